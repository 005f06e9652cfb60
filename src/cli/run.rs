//! `hearsay run`: the sidecar.

use crate::settings::{LogFormat, RunArgs, Settings, print};

/// Resolves the settings (bad values are a usage error, exit 64, all of
/// them reported), starts logging, and runs the sidecar until a signal.
/// With `--print-settings` it prints what was resolved and exits.
pub fn run(args: &RunArgs) -> Result<(), super::Failure> {
    let settings = Settings::resolve(args, &|k| std::env::var(k).ok())
        .map_err(|e| super::Failure::Usage(e.to_string()))?;
    if args.print_settings {
        let out = if args.json {
            format!("{:#}\n", print::json(&settings.resolved))
        } else {
            print::text(&settings.resolved)
        };
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
        for w in &settings.warnings {
            eprintln!("warning: {w}");
        }
        return Ok(());
    }
    super::init_logging(settings.log_format == LogFormat::Json);
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let rt = super::sidecar_runtime().map_err(|e| super::Failure::Runtime(e.into()))?;
    rt.block_on(crate::sidecar::run(settings))
        .map_err(super::Failure::Runtime)
}
