//! The stream's command line: --help explains every key, a bad value names its key, the
//! database password never reaches the output, and a refused connection stops it at once.

use anyhow::Result;
use globalmart_core::db::Db;
use globalmart_testkit::{Cli, TestStack};

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
        "POSTGRES_REALTIME_SSLMODE",
        "POSTGRES_REALTIME_SSLROOTCERT",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CA_LOCATION",
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

#[tokio::test]
async fn a_wrong_password_or_database_stops_at_once_naming_the_setting() -> Result<()> {
    let stack = TestStack::new().await?;
    for (key, value, named) in [
        (
            "POSTGRES_REALTIME_PASSWORD",
            "wr0ng-Pa55",
            "check POSTGRES_REALTIME_USER and POSTGRES_REALTIME_PASSWORD",
        ),
        (
            "POSTGRES_REALTIME_DB",
            "no_such_database",
            "check POSTGRES_REALTIME_DB",
        ),
    ] {
        // A minute of waiting allowed: an outage would be retried (and logged) all that time.
        let out = Cli::new(BIN)
            .database(Db::Realtime, &stack.realtime)
            .env(key, value)
            .env("STREAM_DB_WAIT_SECONDS", "60")
            .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .run()?;
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains("refused the connection"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(named), "{}", out.stderr);
        assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
        assert!(!out.stderr.contains("wr0ng-Pa55") && !out.stdout.contains("wr0ng-Pa55"));
    }
    Ok(())
}

#[tokio::test]
async fn the_password_can_come_from_a_file_and_stays_out_of_the_output() -> Result<()> {
    let stack = TestStack::new().await?;
    let dir = std::env::temp_dir().join(format!("gm-secret-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("password");
    // A wrong one: without the file the default password would connect, so the refusal shows
    // the file was read.
    std::fs::write(&file, "fr0m-a-F1le\n")?;
    let out = Cli::new(BIN)
        .database(Db::Realtime, &stack.realtime)
        .env_remove("POSTGRES_REALTIME_PASSWORD")
        .env("POSTGRES_REALTIME_PASSWORD_FILE", &file.to_string_lossy())
        .env("STREAM_DB_WAIT_SECONDS", "60")
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .run()?;
    std::fs::remove_dir_all(&dir)?;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("check POSTGRES_REALTIME_USER and POSTGRES_REALTIME_PASSWORD"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("fr0m-a-F1le") && !out.stdout.contains("fr0m-a-F1le"));
    Ok(())
}
