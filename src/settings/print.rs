//! `hearsay run --print-settings [--json]`, and the settings table of
//! `docs/settings.md`, both from the declaration.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Resolved;
use super::declared::{self, Kind, Setting};

/// A value as JSON of its kind: numbers, booleans, lists, else text.
fn as_json(s: &Setting, text: Option<String>) -> Value {
    let Some(t) = text else {
        return Value::Null;
    };
    match s.kind {
        Kind::Count { .. } => t.parse::<u64>().map_or(Value::String(t), Value::from),
        Kind::Ratio => t.parse::<f64>().map_or(Value::String(t), Value::from),
        Kind::Bool => t.parse::<bool>().map_or(Value::String(t), Value::from),
        Kind::List => Value::from(super::layers::split_list(&t)),
        _ => Value::String(t),
    }
}

/// One object keyed by setting name, each `{"value": …, "source": …}`.
pub fn json(resolved: &BTreeMap<&'static str, Resolved>) -> Value {
    let mut out = serde_json::Map::new();
    for s in declared::ALL {
        let r = resolved.get(s.name).cloned().unwrap_or(Resolved {
            value: None,
            source: super::Source::Default,
        });
        out.insert(
            s.name.to_owned(),
            json!({"value": as_json(s, r.value), "source": r.source}),
        );
    }
    Value::Object(out)
}

/// One line per setting: name, value, source.
pub fn text(resolved: &BTreeMap<&'static str, Resolved>) -> String {
    let width = declared::ALL
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for s in declared::ALL {
        let (value, source) = match resolved.get(s.name) {
            Some(r) => (r.value.clone(), r.source),
            None => (None, super::Source::Default),
        };
        let value = value.unwrap_or_else(|| "(unset)".into());
        out.push_str(&format!("{:width$}  {value}  ({source})\n", s.name));
    }
    out
}

/// The Markdown table of every setting that is not a test aid.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| setting (file key) | flag | environment | default | what it does |\n|---|---|---|---|---|\n",
    );
    for s in declared::ALL.iter().filter(|s| !s.hidden) {
        let key = if s.has_file_key() {
            format!("`{}`", s.name)
        } else {
            format!("{} (not in the file)", s.name)
        };
        let flag = if s.has_flag() {
            format!("`{}`", s.flag())
        } else {
            "none (secret)".into()
        };
        let mut doc = s.doc.to_owned();
        if let Kind::Duration { .. } = s.kind {
            doc.push_str("; a duration");
        }
        if let Some(old) = s.old_key {
            doc.push_str(&format!(
                "; the file key `{}` (milliseconds) still works, deprecated",
                old.key
            ));
        }
        out.push_str(&format!(
            "| {key} | {flag} | `{}` | {} | {doc} |\n",
            s.env(),
            s.default_text()
        ));
    }
    out
}
