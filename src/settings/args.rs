//! The flags of `hearsay run`, built from the declaration: one flag per
//! setting that may be given as one, with its variable and default in the
//! help. Flags are kept as text here; [`super::Settings::resolve`] parses
//! them with the environment and the file, so all errors come together.

use std::collections::BTreeMap;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};

use super::declared::{self, Kind};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// Setting name → the text its flag was given.
    pub flags: BTreeMap<&'static str, String>,
    /// `--print-settings`: print what was resolved and exit.
    pub print_settings: bool,
    /// With `--print-settings`: as one JSON object.
    pub json: bool,
}

impl RunArgs {
    /// Parses `hearsay run`'s arguments (without `run`), for tests.
    pub fn parse_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<RunArgs, clap::Error> {
        let cmd = <RunArgs as clap::Args>::augment_args(Command::new("run"));
        let matches = cmd.try_get_matches_from(std::iter::once("run").chain(args))?;
        RunArgs::from_arg_matches(&matches)
    }
}

fn help(s: &declared::Setting) -> String {
    let mut h = format!("{} [env: {}]", s.doc, s.env());
    if s.default.is_some() || s.otherwise != "none" {
        h.push_str(&format!(
            " [default: {}]",
            s.default_text().replace('`', "")
        ));
    }
    h
}

impl clap::Args for RunArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for s in declared::ALL.iter().filter(|s| s.has_flag()) {
            let mut arg = Arg::new(s.name)
                .long(s.name.replace('_', "-"))
                .help(help(s))
                .hide(s.hidden)
                .action(ArgAction::Set);
            arg = match s.kind {
                Kind::Bool => arg
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .value_name("BOOL"),
                Kind::Duration { .. } => arg.value_name("DURATION"),
                Kind::Count { .. } => arg.value_name("N"),
                _ => arg.value_name(s.name.to_ascii_uppercase()),
            };
            cmd = cmd.arg(arg);
        }
        cmd.arg(
            Arg::new("print_settings")
                .long("print-settings")
                .action(ArgAction::SetTrue)
                .help("Print every resolved setting with its value and source, then exit"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .requires("print_settings")
                .help("With --print-settings: one JSON object keyed by setting name"),
        )
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for RunArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = BTreeMap::new();
        for s in declared::ALL.iter().filter(|s| s.has_flag()) {
            if m.value_source(s.name) == Some(ValueSource::CommandLine)
                && let Some(v) = m.get_one::<String>(s.name)
            {
                flags.insert(s.name, v.clone());
            }
        }
        Ok(RunArgs {
            flags,
            print_settings: m.get_flag("print_settings"),
            json: m.get_flag("json"),
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
