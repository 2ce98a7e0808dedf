//! Log set-up shared by both binaries: `tracing` events to stderr, filtered by
//! `RUST_LOG` (default `info`), in colour only when stderr is a terminal and
//! `NO_COLOR` is unset or empty (<https://no-color.org>).

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether log lines may carry ANSI colour codes: only on a terminal, and
/// never when `NO_COLOR` holds a non-empty value.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the global `tracing` subscriber: stderr, `RUST_LOG` (default
/// `info`), colour as [`use_colour`] decides for this process.
pub fn init() {
    let no_color = std::env::var_os("NO_COLOR");
    let colour = use_colour(std::io::stderr().is_terminal(), no_color.as_deref());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }
}
