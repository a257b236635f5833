//! The batch's command line: --help explains both databases' keys and a bad value names its key.

use anyhow::Result;
use globalmart_testkit::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-batch");

#[test]
fn help_lists_both_databases_keys() -> Result<()> {
    let out = Cli::new(BIN).args(["--help"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for db in ["REALTIME", "WAREHOUSE"] {
        for field in ["HOST", "PORT", "USER", "PASSWORD", "DB"] {
            let key = format!("POSTGRES_{db}_{field}");
            assert!(
                out.stdout.contains(&key),
                "--help lacks {key}:\n{}",
                out.stdout
            );
        }
    }
    Ok(())
}

#[test]
fn a_bad_metrics_address_names_the_key() -> Result<()> {
    let out = Cli::new(BIN).env("METRICS_ADDR", "nowhere").run()?;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("invalid METRICS_ADDR \"nowhere\""),
        "{}",
        out.stderr
    );
    Ok(())
}
