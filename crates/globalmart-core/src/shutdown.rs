//! The one shutdown signal: Ctrl+C or SIGTERM cancels a token that every task watches; each task
//! finishes its unit of work (a batch, a flush) and returns, and `main` prints its summary.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Starts listening for Ctrl+C and SIGTERM and returns the token they cancel. The handlers are
/// installed before this returns, so a signal that arrives right after is not missed. Must be
/// called inside the tokio runtime.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "Ctrl+C",
            () = cancel.cancelled() => return,
        };
        info!("{name} received: finishing in-flight work, then exiting");
        cancel.cancel();
    });
    Ok(token)
}
