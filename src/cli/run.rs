//! `hearsay run`: the sidecar.

use crate::settings::{LogFormat, RunArgs, Settings};

/// Resolves the settings (a bad value is a usage error, exit 64), starts
/// logging, and runs the sidecar until a signal.
pub fn run(args: &RunArgs) -> Result<(), super::Failure> {
    let settings = Settings::resolve(args, &|k| std::env::var(k).ok())
        .map_err(|e| super::Failure::Usage(e.to_string()))?;
    super::init_logging(settings.log_format == LogFormat::Json);
    let rt = super::runtime().map_err(|e| super::Failure::Runtime(e.into()))?;
    rt.block_on(crate::sidecar::run(settings))
        .map_err(super::Failure::Runtime)
}
