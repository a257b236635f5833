//! Log output: `tracing` events to stderr, filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Our lines at info; the migration runner's bookkeeping ("current version: 6", "no migrations
/// to apply") and PostgreSQL's notices ("relation ... already exists, skipping", from the
/// idempotent migrations) only when they warn: we log what the migrations did ourselves.
pub const DEFAULT_FILTER: &str = "info,refinery_core=warn,tokio_postgres=warn";

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Ignoring the error is deliberate: it only says a subscriber is already installed.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only for a person at a terminal, never into log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
