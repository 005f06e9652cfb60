//! The SVG plots, drawn with plotters' SVG backend: the time-to-all CDF
//! of every system at one N (one plot per N), time-to-all p50/p99 against
//! N, and CPU per received event.

use std::path::Path;

use plotters::prelude::*;

use crate::results::Results;

fn color(system: &str) -> RGBColor {
    match system {
        "hearsay" => RGBColor(0x1f, 0x77, 0xb4),
        "hearsay-streams" => RGBColor(0x17, 0xbe, 0xcf),
        "redis" => RGBColor(0xd6, 0x27, 0x28),
        "redis-relayed" => RGBColor(0xff, 0x98, 0x96),
        "nats" => RGBColor(0x94, 0x67, 0xbd),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

/// A log axis range covering `values`, in whole decades.
fn decades(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.1..10.0;
    }
    10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0))
}

/// Draws the legend at `at` and writes the file.
fn finish<'a, CT: plotters::coord::CoordTranslate>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    at: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {e}")
}

/// The time-to-all CDF of every system that ran at `n` nodes.
pub fn latency_cdf(r: &Results, n: usize, path: &Path) -> anyhow::Result<()> {
    let series: Vec<(&str, &[f64])> = r
        .systems
        .iter()
        .filter_map(|s| {
            s.run(n)
                .map(|run| (s.system.as_str(), run.latency.time_to_all.as_slice()))
        })
        .collect();
    let x = decades(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("time-to-all, N = {n}: fraction of events by then"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(54)
        .build_cartesian_2d(x.log_scale(), 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds after the publish was accepted (log scale)")
        .y_desc("fraction of events at every node")
        .x_label_formatter(&|v| number(*v))
        .draw()
        .map_err(err)?;
    for (system, samples) in series {
        let c = color(system);
        let total = samples.len().max(1) as f64;
        let points = samples
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, v)| (*v, (i + 1) as f64 / total));
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(err)?
            .label(system)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    finish(&root, &mut chart, SeriesLabelPosition::LowerRight)
}

pub fn time_to_all_vs_n(r: &Results, path: &Path) -> anyhow::Result<()> {
    let ys = decades(r.systems.iter().flat_map(|s| {
        s.runs.iter().flat_map(|run| {
            [
                run.latency.time_to_all_p50_ms,
                run.latency.time_to_all_p99_ms,
            ]
        })
    }));
    let max_n = r
        .systems
        .iter()
        .flat_map(|s| s.runs.iter().map(|r| r.nodes))
        .max()
        .unwrap_or(10);
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "time-to-all against cluster size (solid p50, dashed p99)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(54)
        .build_cartesian_2d((2f64..(max_n as f64 * 1.3)).log_scale(), ys.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("nodes (log scale)")
        .y_desc("milliseconds (log scale)")
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .draw()
        .map_err(err)?;
    for s in &r.systems {
        let c = color(&s.system);
        let p50: Vec<(f64, f64)> = s
            .runs
            .iter()
            .map(|r| (r.nodes as f64, r.latency.time_to_all_p50_ms))
            .collect();
        let p99: Vec<(f64, f64)> = s
            .runs
            .iter()
            .map(|r| (r.nodes as f64, r.latency.time_to_all_p99_ms))
            .collect();
        let finite = |v: &Vec<(f64, f64)>| {
            v.iter()
                .copied()
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(LineSeries::new(finite(&p50), c.stroke_width(2)))
            .map_err(err)?
            .label(s.system.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(
                finite(&p50)
                    .into_iter()
                    .map(|p| Circle::new(p, 4, c.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(DashedLineSeries::new(finite(&p99), 6, 4, c.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(
                finite(&p99)
                    .into_iter()
                    .map(|p| Circle::new(p, 4, c.stroke_width(2))),
            )
            .map_err(err)?;
    }
    finish(&root, &mut chart, SeriesLabelPosition::UpperLeft)
}

/// An axis label: `0.5`, `3`, `10000`, never `10000.0`.
fn number(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// CPU per received event: for each N and rate the CPU runs measured, one
/// bar per system, its own processes (sidecars, or broker) solid and its
/// apps stacked lighter on top.
pub fn cpu_per_event(r: &Results, path: &Path) -> anyhow::Result<()> {
    // (system, N, rate, system µs, apps µs)
    let mut bars: Vec<(&str, usize, f64, f64, f64)> = Vec::new();
    for s in &r.systems {
        for run in &s.runs {
            for st in run.cpu.iter().flat_map(|c| c.steps.iter()) {
                bars.push((
                    s.system.as_str(),
                    run.nodes,
                    st.rate,
                    st.system_us_per_delivery.max(0.0),
                    st.apps_us_per_delivery.max(0.0),
                ));
            }
        }
    }
    let mut groups: Vec<(usize, u64)> = bars.iter().map(|b| (b.1, b.2 as u64)).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut systems: Vec<&str> = Vec::new();
    for b in &bars {
        if !systems.contains(&b.0) {
            systems.push(b.0);
        }
    }
    let top = bars
        .iter()
        .map(|b| b.3 + b.4)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.45; // room for the legend above the bars
    let width = 1.0 / (systems.len().max(1) as f64 + 1.0);
    let root = SVGBackend::new(path, (860, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "CPU per received event (solid: sidecar or broker; light: the app)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..groups.len().max(1) as f64, 0f64..top)
        .map_err(err)?;
    let label_of = |x: f64| {
        let i = x.floor() as usize;
        match groups.get(i) {
            Some((n, rate)) if (x - i as f64 - 0.5).abs() < 1e-6 => format!("N = {n}, {rate}/s"),
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| label_of(*x))
        .y_desc("µs of CPU per event per receiving node")
        .y_label_formatter(&|v| number(*v))
        .draw()
        .map_err(err)?;
    for (k, system) in systems.iter().enumerate() {
        let c = color(system);
        let light = c.mix(0.35);
        let mut solid = Vec::new();
        let mut stacked = Vec::new();
        for (_, n, rate, own, apps) in bars.iter().filter(|b| b.0 == *system) {
            let Some(g) = groups.iter().position(|x| *x == (*n, *rate as u64)) else {
                continue;
            };
            let x0 = g as f64 + width * (k as f64 + 0.5);
            let x1 = x0 + width * 0.9;
            solid.push(Rectangle::new([(x0, 0.0), (x1, *own)], c.filled()));
            stacked.push(Rectangle::new(
                [(x0, *own), (x1, own + apps)],
                light.filled(),
            ));
        }
        chart
            .draw_series(solid)
            .map_err(err)?
            .label(*system)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled()));
        chart.draw_series(stacked).map_err(err)?;
    }
    finish(&root, &mut chart, SeriesLabelPosition::UpperLeft)
}
