//! The optional settings file (`--config`, TOML or YAML). Its keys are the
//! declared setting names; values are written as they would be on the
//! command line (durations `5s`, lists as lists). Unknown keys are errors,
//! so a typo is caught at start instead of being silently ignored. The
//! previous release's keys (`retention_ms`, …) are still read, with a
//! warning.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::SettingError;
use super::declared::{self, Kind, Setting};

/// The file's values as text, keyed by setting name, and what was wrong.
#[derive(Debug, Default)]
pub struct FileValues {
    pub values: BTreeMap<&'static str, String>,
    pub errors: Vec<SettingError>,
    pub warnings: Vec<String>,
}

impl FileValues {
    /// Reads and parses the file; the format follows the extension
    /// (`.toml`, or `.yaml`/`.yml`).
    pub fn load(path: &Path) -> FileValues {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) => FileValues {
                errors: vec![SettingError {
                    setting: "--config".into(),
                    reason: format!("cannot read {}: {e}", path.display()),
                }],
                ..FileValues::default()
            },
        }
    }

    pub fn parse(path: &Path, text: &str) -> FileValues {
        let mut out = FileValues::default();
        let whole = format!("--config {}", path.display());
        let doc: Result<Value, String> = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(text).map_err(|e| e.to_string()),
            Some("yaml" | "yml") => serde_yaml_ng::from_str(text).map_err(|e| e.to_string()),
            _ => Err("the file name must end in .toml, .yaml or .yml".into()),
        };
        let table = match doc {
            Ok(Value::Object(t)) => t,
            Ok(Value::Null) => return out,
            Ok(_) => {
                out.fail(whole, "must be a table of settings");
                return out;
            }
            Err(e) => {
                out.fail(whole, e);
                return out;
            }
        };
        for (key, value) in table {
            out.take(&key, &value);
        }
        out
    }

    fn fail(&mut self, setting: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(SettingError {
            setting: setting.into(),
            reason: reason.into(),
        });
    }

    fn take(&mut self, key: &str, value: &Value) {
        let named = format!("{key} (settings file)");
        if let Some(s) = declared::find(key).filter(|s| s.has_file_key()) {
            match as_text(s, value) {
                Ok(text) => {
                    self.values.insert(s.name, text);
                }
                Err(e) => self.fail(named, e),
            }
            return;
        }
        let old = declared::ALL
            .iter()
            .find(|s| s.old_key.is_some_and(|o| o.key == key));
        let Some(s) = old else {
            self.fail(named, unknown_key(key));
            return;
        };
        self.warnings.push(format!(
            "settings file key {key} is deprecated and will be removed in the next release; write {}: {} instead",
            s.name,
            example(s, value)
        ));
        if self.values.contains_key(s.name) {
            return; // the new key wins whatever the order
        }
        let millis = s.old_key.is_some_and(|o| o.millis);
        match value.as_u64() {
            Some(n) if millis => {
                self.values.insert(s.name, format!("{n}ms"));
            }
            _ => self.fail(named, "expected a whole number of milliseconds"),
        }
    }
}

fn example(s: &Setting, value: &Value) -> String {
    match value.as_u64() {
        Some(n) => humantime::format_duration(std::time::Duration::from_millis(n)).to_string(),
        None => format!("<{}>", s.name),
    }
}

fn unknown_key(key: &str) -> String {
    let near = declared::ALL
        .iter()
        .filter(|s| s.has_file_key() && !s.hidden)
        .find(|s| strsim_close(s.name, key));
    match near {
        Some(s) => format!("unknown key; did you mean {}?", s.name),
        None => "unknown key (the keys are the setting names, see docs/settings.md)".into(),
    }
}

/// Close enough to be a typo: same length ±1 and at most two differing
/// characters at the same positions, or one is a prefix of the other.
fn strsim_close(a: &str, b: &str) -> bool {
    if a.starts_with(b) || b.starts_with(a) {
        return a.len().abs_diff(b.len()) <= 3;
    }
    a.len().abs_diff(b.len()) <= 1 && a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count() <= 2
}

/// A file value as the text a flag would carry.
fn as_text(s: &Setting, value: &Value) -> Result<String, String> {
    match (s.kind, value) {
        (Kind::List, Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "expected a list of host:port strings".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        (Kind::Duration { .. }, Value::Number(_)) => {
            Err("write a duration with its unit, such as 500ms, 5s or 2m".into())
        }
        (_, Value::String(t)) => Ok(t.clone()),
        (_, Value::Number(n)) => Ok(n.to_string()),
        (_, Value::Bool(b)) => Ok(b.to_string()),
        (_, Value::Null) => Err("has no value".into()),
        _ => Err("expected a single value".into()),
    }
}
