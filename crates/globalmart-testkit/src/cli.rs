//! Runs a workspace binary the way a user does: in an empty working directory (so the
//! repository's own `.env`, if any, is not read), with a clean environment plus what the test
//! sets, and optionally a `.env` file of the test's own.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use globalmart_core::db::{Db, PgSettings};

/// The longest a command-line run may take.
pub const MAX_RUN: Duration = Duration::from_secs(60);

/// A command line to run.
#[derive(Debug)]
pub struct Cli {
    command: Command,
    dir: PathBuf,
    dotenv: Option<String>,
}

/// What the run printed and how it ended.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    /// `binary` is the path Cargo gives integration tests: `env!("CARGO_BIN_EXE_<name>")`.
    pub fn new(binary: &str) -> Cli {
        let dir = std::env::temp_dir().join(format!("gm-cli-{}", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(binary);
        command.env_clear().current_dir(&dir);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        Cli {
            command,
            dir,
            dotenv: None,
        }
    }

    /// Adds command-line arguments.
    pub fn args<const N: usize>(mut self, args: [&str; N]) -> Cli {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.command.env(key, value);
        self
    }

    /// Leaves an environment variable out (one [`Cli::database`] set, say).
    pub fn env_remove(mut self, key: &str) -> Cli {
        self.command.env_remove(key);
        self
    }

    /// Points the binary at database `settings` of kind `db`.
    pub fn database(mut self, db: Db, settings: &PgSettings) -> Cli {
        self.command.envs(crate::database_env(db, settings));
        self
    }

    /// Writes a `.env` file with `contents` into the working directory.
    pub fn dotenv(mut self, contents: &str) -> Cli {
        self.dotenv = Some(contents.to_owned());
        self
    }

    /// Runs to completion. A run still going after [`MAX_RUN`] is killed and reported as an
    /// error, so a binary that never exits fails its test instead of hanging the suite.
    pub fn run(mut self) -> Result<CliOutput> {
        fs::create_dir_all(&self.dir)?;
        if let Some(contents) = &self.dotenv {
            fs::write(self.dir.join(".env"), contents)?;
        }
        let child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running the binary")?;
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        let output = match finished.recv_timeout(MAX_RUN) {
            Ok(output) => output?,
            Err(_) => {
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()?;
                bail!("the binary was still running after {MAX_RUN:?}: killed pid {pid}");
            }
        };
        // Best effort: a leftover empty temporary folder is harmless.
        let _ = fs::remove_dir_all(&self.dir);
        Ok(CliOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
