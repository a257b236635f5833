//! The shutdown signal: SIGTERM (what `kill`, systemd and Docker send) cancels the token, and the
//! process keeps running so its tasks can finish their work. This file is its own test process,
//! so signalling ourselves touches no other test.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};

#[tokio::test]
async fn sigterm_cancels_the_token_instead_of_killing_the_process() -> Result<()> {
    let token = globalmart_core::shutdown::on_signal()?;
    assert!(!token.is_cancelled());
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()?;
    ensure!(status.success(), "kill failed: {status}");
    tokio::time::timeout(Duration::from_secs(5), token.cancelled()).await?;
    assert!(token.is_cancelled());
    Ok(())
}
