//! The layering: for each declared setting, the text given by a flag, else
//! the environment, else the settings file, with where it came from. Typed
//! reads parse that text by the setting's [`Kind`]; every error is kept, so
//! all bad settings are reported together.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::declared::{self, Kind, Setting};
use super::file::FileValues;
use super::{Env, SettingError};

/// Where a resolved value came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        })
    }
}

/// One given value: its text, its source, and the exact name it was given
/// under (for error messages).
#[derive(Clone, Debug)]
struct Given {
    text: String,
    source: Source,
    as_named: String,
}

/// What was resolved for one setting, for `--print-settings`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The value as it would be written; `None` when unset.
    pub value: Option<String>,
    pub source: Source,
}

pub struct Layers {
    given: BTreeMap<&'static str, Given>,
    pub errors: Vec<SettingError>,
    pub warnings: Vec<String>,
    pub resolved: BTreeMap<&'static str, Resolved>,
}

impl Layers {
    /// Gathers flags, then `env`, then the file's values.
    pub fn gather(
        flags: &BTreeMap<&'static str, String>,
        env: Env<'_>,
        file: FileValues,
    ) -> Layers {
        let mut given = BTreeMap::new();
        for s in declared::ALL {
            if let Some(text) = flags.get(s.name) {
                given.insert(
                    s.name,
                    Given {
                        text: text.clone(),
                        source: Source::Flag,
                        as_named: s.flag(),
                    },
                );
            } else if let Some(text) = env(&s.env()).filter(|v| !v.is_empty()) {
                given.insert(
                    s.name,
                    Given {
                        text,
                        source: Source::Env,
                        as_named: s.env(),
                    },
                );
            } else if let Some(text) = file.values.get(s.name) {
                given.insert(
                    s.name,
                    Given {
                        text: text.clone(),
                        source: Source::File,
                        as_named: format!("{} (settings file)", s.name),
                    },
                );
            }
        }
        Layers {
            given,
            errors: file.errors,
            warnings: file.warnings,
            resolved: BTreeMap::new(),
        }
    }

    /// Records a problem that is not one setting's bad text (a missing
    /// requirement, two settings that do not fit together).
    pub fn fail(&mut self, setting: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(SettingError {
            setting: setting.into(),
            reason: reason.into(),
        });
    }

    /// The name to blame for `s`: as it was given, else flag and variable.
    pub fn blame(&self, s: &Setting) -> String {
        match self.given.get(s.name) {
            Some(g) => g.as_named.clone(),
            None if s.has_flag() => format!("{} / {}", s.flag(), s.env()),
            None => s.env(),
        }
    }

    /// Overrides what `--print-settings` shows for `s` (a derived value).
    /// A secret is kept only as `<redacted>`.
    pub fn record(&mut self, s: &Setting, value: Option<String>, source: Source) {
        let value = value.map(|v| if s.secret { "<redacted>".to_owned() } else { v });
        self.resolved.insert(s.name, Resolved { value, source });
    }

    /// The text given for `s`, else its literal default; parsed by `parse`,
    /// which also checks the kind's range. A bad text is an error and gives
    /// `None`.
    fn typed<T>(&mut self, s: &Setting, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let (text, source) = match self.given.get(s.name) {
            Some(g) => (Some(g.text.clone()), g.source),
            None => (s.default.map(str::to_owned), Source::Default),
        };
        self.record(s, text.clone(), source);
        let text = text?;
        match parse(&text) {
            Ok(v) => Some(v),
            Err(reason) => {
                let setting = self.blame(s);
                self.fail(setting, format!("{text:?}: {reason}"));
                None
            }
        }
    }

    pub fn duration(&mut self, s: &Setting) -> Option<Duration> {
        let Kind::Duration { min } = s.kind else {
            unreachable!("{} is not a duration", s.name)
        };
        self.typed(s, |t| {
            let d = humantime::parse_duration(t)
                .map_err(|e| format!("{e} (write a duration such as 500ms, 5s or 2m)"))?;
            if d < min {
                return Err(format!(
                    "must be at least {}",
                    humantime::format_duration(min)
                ));
            }
            Ok(d)
        })
    }

    pub fn count(&mut self, s: &Setting) -> Option<u64> {
        let Kind::Count { min, max } = s.kind else {
            unreachable!("{} is not a count", s.name)
        };
        self.typed(s, |t| {
            let n: u64 = t.parse().map_err(|e| format!("{e} (a whole number)"))?;
            if !(min..=max).contains(&n) {
                return Err(format!("must be from {min} to {max}"));
            }
            Ok(n)
        })
    }

    /// A count declared with a maximum that fits `u32`.
    pub fn count_u32(&mut self, s: &Setting) -> Option<u32> {
        self.count(s).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub fn count_usize(&mut self, s: &Setting) -> Option<usize> {
        self.count(s)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub fn bool(&mut self, s: &Setting) -> bool {
        debug_assert_eq!(s.kind, Kind::Bool);
        self.typed(s, parse_bool).unwrap_or(false)
    }

    pub fn addr(&mut self, s: &Setting) -> Option<SocketAddr> {
        self.typed(s, |t| t.parse::<SocketAddr>().map_err(|e| e.to_string()))
    }

    pub fn text(&mut self, s: &Setting) -> Option<String> {
        self.typed(s, |t| Ok(t.to_owned()))
    }

    pub fn path(&mut self, s: &Setting) -> Option<PathBuf> {
        self.typed(s, |t| Ok(PathBuf::from(t)))
    }

    /// One of the declared words.
    pub fn choice(&mut self, s: &Setting) -> Option<String> {
        let Kind::Choice(words) = s.kind else {
            unreachable!("{} is not a choice", s.name)
        };
        self.typed(s, |t| {
            if words.contains(&t) {
                Ok(t.to_owned())
            } else {
                Err(format!("expected one of {}", words.join(", ")))
            }
        })
    }

    pub fn list(&mut self, s: &Setting, check: impl Fn(&str) -> Result<(), String>) -> Vec<String> {
        self.typed(s, |t| {
            let items = split_list(t);
            for i in &items {
                check(i)?;
            }
            Ok(items)
        })
        .unwrap_or_default()
    }

    pub fn ratio(&mut self, s: &Setting) -> Option<f64> {
        self.typed(s, |t| {
            let r: f64 = t.parse().map_err(|e| format!("{e}"))?;
            if !(0.0..1.0).contains(&r) {
                return Err("must be from 0 up to (not including) 1".into());
            }
            Ok(r)
        })
    }
}

pub fn parse_bool(t: &str) -> Result<bool, String> {
    match t {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}
