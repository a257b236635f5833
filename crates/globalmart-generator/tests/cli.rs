//! The generator's command line: --help explains every key, a bad value from a flag, the
//! environment or `.env` stops it with the key, the value and what is allowed, and a broker that
//! refuses its credentials stops it at once.

use anyhow::Result;
use globalmart_testkit::{Cli, KafkaBroker, SaslUser};

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-generator");
#[test]
fn help_lists_every_key_with_its_default() -> Result<()> {
    let out = Cli::new(BIN).args(["--help"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for key in [
        "DATA_GEN_EVENTS_PER_SECOND",
        "DATA_GEN_NUM_USERS",
        "DATA_GEN_NUM_PRODUCTS",
        "KAFKA_BOOTSTRAP_SERVERS",
        "METRICS_ADDR",
    ] {
        assert!(
            out.stdout.contains(key),
            "--help lacks {key}:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("[default: 50]"), "{}", out.stdout);
    Ok(())
}

#[test]
fn a_bad_environment_value_names_the_key() -> Result<()> {
    let out = Cli::new(BIN)
        .env("DATA_GEN_EVENTS_PER_SECOND", "fast")
        .run()?;
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr.trim(),
        "error: invalid DATA_GEN_EVENTS_PER_SECOND \"fast\": expected a positive whole number of events per second, or \"max\""
    );
    Ok(())
}

/// Records of `topic` in a bounded dry run's output.
fn records(stdout: &str, topic: &str) -> usize {
    stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{{\"topic\":\"{topic}\"")))
        .count()
}

#[test]
fn precedence_is_flag_then_environment_then_dotenv() -> Result<()> {
    let dry_run = ["--dry-run", "--count", "0", "--products", "3"];
    let from_dotenv = Cli::new(BIN).dotenv("DATA_GEN_NUM_USERS=0\n").run()?;
    assert_eq!(from_dotenv.code, Some(2));
    assert!(
        from_dotenv
            .stderr
            .contains("invalid DATA_GEN_NUM_USERS \"0\""),
        "{}",
        from_dotenv.stderr
    );

    let dotenv_used = Cli::new(BIN)
        .dotenv("DATA_GEN_NUM_USERS=7\n")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args(dry_run)
        .run()?;
    assert_eq!(dotenv_used.code, Some(0), "{}", dotenv_used.stderr);
    assert_eq!(records(&dotenv_used.stdout, "users-topic"), 7);

    let env_beats_dotenv = Cli::new(BIN)
        .dotenv("DATA_GEN_NUM_USERS=7\n")
        .env("DATA_GEN_NUM_USERS", "25")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args(dry_run)
        .run()?;
    assert_eq!(records(&env_beats_dotenv.stdout, "users-topic"), 25);

    let flag_beats_env = Cli::new(BIN)
        .env("DATA_GEN_NUM_USERS", "25")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args(dry_run)
        .args(["--users", "4"])
        .run()?;
    assert_eq!(records(&flag_beats_env.stdout, "users-topic"), 4);
    assert_eq!(records(&flag_beats_env.stdout, "products-topic"), 3);
    Ok(())
}

#[test]
fn a_broker_refusing_its_password_stops_it_at_once_naming_the_setting() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("gm-gen-sasl-{}", uuid::Uuid::new_v4().simple()));
    let certs = dir.join("certs");
    globalmart_testkit::make_certs(&certs)?;
    let user = SaslUser {
        name: "generator".into(),
        password: "r1ght-Secr3t".into(),
    };
    let broker = KafkaBroker::start_secure(&certs, &[user])?;
    let path = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let out = Cli::new(BIN)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env(
            "KAFKA_BOOTSTRAP_SERVERS",
            &broker.secure_bootstrap_servers().unwrap_or_default(),
        )
        .env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        .env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        .env("KAFKA_SASL_USERNAME", "generator")
        .env("KAFKA_SASL_PASSWORD", "wr0ng-Secr3t")
        .env("KAFKA_SSL_CA_LOCATION", &path("ca.pem"))
        .env("KAFKA_SSL_CERTIFICATE_LOCATION", &path("client.pem"))
        .env("KAFKA_SSL_KEY_LOCATION", &path("client.key"))
        // Without the refusal it would run (and retry) for ten minutes.
        .args(["--rate", "100", "--duration", "10m"])
        .run()?;
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, Some(1), "{all}");
    assert!(all.contains("Kafka refused the connection"), "{all}");
    assert!(
        all.contains("check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"),
        "{all}"
    );
    assert!(
        !all.contains("r1ght-Secr3t") && !all.contains("wr0ng-Secr3t"),
        "{all}"
    );
    Ok(())
}

#[test]
fn catalogue_skip_sends_events_without_the_catalogue() -> Result<()> {
    let run = |catalogue: &str| {
        Cli::new(BIN)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .args([
                "--dry-run",
                "--count",
                "200",
                "--seed",
                "3",
                "--users",
                "40",
            ])
            .args(["--products", "12", "--catalogue", catalogue])
            .run()
    };
    let auto = run("auto")?;
    assert_eq!(auto.code, Some(0), "{}", auto.stderr);
    let skip = run("skip")?;
    assert_eq!(skip.code, Some(0), "{}", skip.stderr);
    // Only the catalogue is missing: the changes during the run are sent either way.
    let catalogue = |topic: &str| records(&auto.stdout, topic) - records(&skip.stdout, topic);
    assert_eq!(catalogue("users-topic"), 40);
    assert_eq!(catalogue("products-topic"), 12);
    // The same events either way.
    let events = |stdout: &str| {
        stdout
            .lines()
            .filter(|l| !l.contains("\"users-topic\"") && !l.contains("\"products-topic\""))
            .count()
    };
    assert_eq!(events(&skip.stdout), events(&auto.stdout));
    assert!(events(&skip.stdout) >= 200, "{}", skip.stdout);
    Ok(())
}
