//! The stream's command line: --help explains every key, a bad value names its key, and the
//! database password never reaches the output.

use anyhow::Result;
use globalmart_testkit::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-stream");

#[test]
fn help_lists_every_key() -> Result<()> {
    let out = Cli::new(BIN).args(["--help"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for key in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "POSTGRES_REALTIME_HOST",
        "POSTGRES_REALTIME_PORT",
        "POSTGRES_REALTIME_PASSWORD",
        "STREAM_CONSUMER_GROUP",
        "METRICS_ADDR",
    ] {
        assert!(
            out.stdout.contains(key),
            "--help lacks {key}:\n{}",
            out.stdout
        );
    }
    Ok(())
}

#[test]
fn a_bad_port_names_the_key_and_the_range() -> Result<()> {
    let out = Cli::new(BIN).env("POSTGRES_REALTIME_PORT", "70000").run()?;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("invalid POSTGRES_REALTIME_PORT \"70000\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1..=65535"), "{}", out.stderr);
    Ok(())
}

#[test]
fn the_password_never_appears_in_the_output() -> Result<()> {
    // Nothing listens on this port: the stream logs its configuration, waits 1 s for the
    // database, and stops with an error that names the target, never the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = Cli::new(BIN)
        .env("POSTGRES_REALTIME_PASSWORD", "s3cret-Pa55")
        .env("POSTGRES_REALTIME_PORT", &port.to_string())
        .env("STREAM_DB_WAIT_SECONDS", "1")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .run()?;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("configuration loaded"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("localhost:{port}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("not reachable"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret-Pa55") && !out.stdout.contains("s3cret-Pa55"));
    let help = Cli::new(BIN)
        .env("POSTGRES_REALTIME_PASSWORD", "s3cret-Pa55")
        .args(["--help"])
        .run()?;
    assert!(!help.stdout.contains("s3cret-Pa55"), "{}", help.stdout);
    Ok(())
}
