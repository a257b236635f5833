//! The generator's command line: --help explains every key, and a bad value from a flag, the
//! environment or `.env` stops it with the key, the value and what is allowed.

use anyhow::Result;
use globalmart_testkit::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-generator");
/// What a run prints once its configuration is accepted (the generation itself is issue #4).
const CONFIG_ACCEPTED: &str = "event generation is not built yet";

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

#[test]
fn precedence_is_flag_then_environment_then_dotenv() -> Result<()> {
    let from_dotenv = Cli::new(BIN).dotenv("DATA_GEN_NUM_USERS=0\n").run()?;
    assert_eq!(from_dotenv.code, Some(2));
    assert!(
        from_dotenv
            .stderr
            .contains("invalid DATA_GEN_NUM_USERS \"0\""),
        "{}",
        from_dotenv.stderr
    );

    let env_beats_dotenv = Cli::new(BIN)
        .dotenv("DATA_GEN_NUM_USERS=0\n")
        .env("DATA_GEN_NUM_USERS", "25")
        .run()?;
    assert!(
        env_beats_dotenv.stderr.contains(CONFIG_ACCEPTED),
        "{}",
        env_beats_dotenv.stderr
    );
    assert!(
        env_beats_dotenv.stderr.contains("users: 25"),
        "{}",
        env_beats_dotenv.stderr
    );

    let flag_beats_env = Cli::new(BIN)
        .env("DATA_GEN_NUM_PRODUCTS", "0")
        .args(["--products", "7"])
        .run()?;
    assert!(
        flag_beats_env.stderr.contains("products: 7"),
        "{}",
        flag_beats_env.stderr
    );
    Ok(())
}
