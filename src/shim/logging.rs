//! The shim's log: containerd's `log` fifo in the bundle (what `journalctl -u containerd`
//! shows), and also the file runsc.toml's `log_path` names, at runsc.toml's `log_level`.
//!
//! runsc.toml is only known to `start` (options on stdin); `start` hands the level and file to the
//! daemon through these environment variables.

use std::fs::OpenOptions;
use std::path::Path;
use std::str::FromStr;

use containerd_shim::logger::FifoLogger;
use log::{LevelFilter, Log, Metadata, Record};

/// The level for the daemon, from runsc.toml's `log_level`.
pub const LEVEL_ENV: &str = "RUNSC_GUARD_SHIM_LOG_LEVEL";
/// The extra log file for the daemon, from runsc.toml's `log_path`.
pub const FILE_ENV: &str = "RUNSC_GUARD_SHIM_LOG_FILE";

/// Maps logrus' level names (what gVisor's runsc.toml uses) onto `log`'s.
pub fn level_from_logrus(name: &str) -> Option<LevelFilter> {
    match name.to_ascii_lowercase().as_str() {
        "" => None,
        "warning" => Some(LevelFilter::Warn),
        "fatal" | "panic" => Some(LevelFilter::Error),
        other => LevelFilter::from_str(other).ok(),
    }
}

struct TeeLogger {
    fifo: Option<FifoLogger>,
    file: Option<FifoLogger>,
}

impl Log for TeeLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        for sink in [&self.fifo, &self.file].into_iter().flatten() {
            sink.log(record);
        }
    }

    fn flush(&self) {
        for sink in [&self.fifo, &self.file].into_iter().flatten() {
            sink.flush();
        }
    }
}

/// Installs the daemon's logger. A missing fifo (the shim run by hand) is not fatal.
pub fn init(debug: bool) {
    let fifo = FifoLogger::new("", "").ok();
    let file = std::env::var_os(FILE_ENV).and_then(|p| {
        let p = Path::new(&p);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(FifoLogger::with_file)
    });
    let mut level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|l| level_from_logrus(&l))
        .unwrap_or(LevelFilter::Info);
    if debug && level < LevelFilter::Debug {
        level = LevelFilter::Debug;
    }
    if log::set_boxed_logger(Box::new(TeeLogger { fifo, file })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logrus_levels() {
        assert_eq!(level_from_logrus("debug"), Some(LevelFilter::Debug));
        assert_eq!(level_from_logrus("warning"), Some(LevelFilter::Warn));
        assert_eq!(level_from_logrus("panic"), Some(LevelFilter::Error));
        assert_eq!(level_from_logrus("TRACE"), Some(LevelFilter::Trace));
        assert_eq!(level_from_logrus(""), None);
        assert_eq!(level_from_logrus("loud"), None);
    }
}
