//! A private PostgreSQL server for fault tests: the Debian binaries `scripts/dev-up.sh`
//! installed, a temporary data folder and a free localhost port, so a test can restart it the
//! hard way without touching the shared clusters other tests are using.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use globalmart_core::db::{Db, PgSettings};

/// A PostgreSQL server this test owns. It trusts every localhost connection, so the platform's
/// user and password work unchanged.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server's programs as the postgres OS user (we are root: initdb refuses root).
    as_postgres: bool,
}

impl PostgresServer {
    /// Creates a cluster whose superuser is `user` and starts it.
    pub fn start(user: &str) -> Result<PostgresServer> {
        let bin = newest_bin()?;
        let dir = std::env::temp_dir().join(format!("gm-pg-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir)?;
        let as_postgres = running_as_root()?;
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to the postgres OS user.
            checked(Command::new("chown").arg("postgres:").arg(&dir).output()?)?;
        }
        let server = PostgresServer {
            bin,
            port: crate::free_port()?,
            dir,
            as_postgres,
        };
        let data = server.data().to_string_lossy().into_owned();
        server.run(
            "initdb",
            &["-D", &data, "-U", user, "--auth=trust", "-E", "UTF8"],
        )?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    /// `template` (user, password) pointed at this server and a new migrated database there.
    pub async fn database(&self, template: &PgSettings, db: Db) -> Result<PgSettings> {
        let server = PgSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            ..template.clone()
        };
        crate::create_database(&server, "globalmart_private", db).await
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`: no shutdown
    /// checkpoint, every connection cut), keeps it down for `down`, then starts it again; the
    /// start replays the WAL as after a crash.
    pub fn restart(&mut self, down: Duration) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])?;
        std::thread::sleep(down);
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.to_string_lossy()
        );
        let log = self.dir.join("postgres.log").to_string_lossy().into_owned();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let data = self.data().to_string_lossy().into_owned();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of the server's programs, as the postgres OS user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        let output = command
            .args(args)
            .output()
            .with_context(|| format!("running {program}"))?;
        checked(output).with_context(|| format!("{program} {}", args.join(" ")))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Err(e) = self.pg_ctl(&["stop", "-m", "immediate", "-w"]) {
            eprintln!("testkit: stopping the private PostgreSQL: {e:#}");
        }
        // Best effort: a leftover temporary folder is harmless.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed server's bin folder (`/usr/lib/postgresql/<major>/bin`).
fn newest_bin() -> Result<PathBuf> {
    let mut majors: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql (run scripts/dev-up.sh first)")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort_unstable();
    match majors.last() {
        Some(major) => Ok(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))),
        None => bail!("no PostgreSQL server in /usr/lib/postgresql"),
    }
}

fn running_as_root() -> Result<bool> {
    let output = Command::new("id").arg("-u").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn checked(output: Output) -> Result<()> {
    if !output.status.success() {
        bail!(
            "exit {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
