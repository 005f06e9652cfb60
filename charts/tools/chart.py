#!/usr/bin/env python3
"""Helm without a helm binary, for the chart checks in tests/chart.rs.

Uses helm-python-sdk (Helm 4's SDK through its C ABI):

  chart.py lint   CHART [--values FILE]... [--kube-version v1.33.0]   -> JSON report
  chart.py render CHART [--values FILE]... [--set-json JSON] [--name N] [--namespace NS]
                                                                       -> JSON {template: manifest}
  chart.py schema CHART [--values FILE]... [--set-json JSON]          -> exit 1 with the error
"""

import argparse
import json
import sys

import helm_python as helm
import yaml


def merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def values(args):
    out = {}
    for path in args.values or []:
        with open(path, encoding="utf-8") as f:
            merge(out, yaml.safe_load(f) or {})
    if args.set_json:
        merge(out, json.loads(args.set_json))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["lint", "render", "schema"])
    p.add_argument("chart")
    p.add_argument("--values", action="append")
    p.add_argument("--set-json")
    p.add_argument("--name", default="hearsay")
    p.add_argument("--namespace", default="default")
    p.add_argument("--kube-version")
    args = p.parse_args()
    vals = values(args)
    if args.command == "lint":
        report = helm.lint(args.chart, vals, strict=True, namespace=args.namespace, kube_version=args.kube_version)
        print(json.dumps(report))
        return 0
    with helm.Chart.load(args.chart) as chart:
        if args.command == "schema":
            try:
                chart.validate_schema(vals)
            except helm.HelmError as e:
                print(e)
                return 1
            print("valid")
            return 0
        out = chart.render(vals, name=args.name, namespace=args.namespace, is_install=True)
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
