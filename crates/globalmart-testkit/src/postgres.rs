//! A private PostgreSQL server for fault tests: the Debian binaries `scripts/dev-up.sh`
//! installed, a temporary data folder and a free localhost port, so a test can restart it the
//! hard way without touching the shared clusters other tests are using.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use globalmart_core::db::{Db, PgSettings};

/// A PostgreSQL server this test owns. By default it trusts every localhost connection, so
/// the platform's user and password work unchanged; [`PostgresServer::start_tls`] makes one
/// that takes only TLS connections with a password, as a managed database does.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server's programs as the postgres OS user (we are root: initdb refuses root).
    as_postgres: bool,
    /// Settings added to the server's command line (TLS).
    options: String,
}

impl PostgresServer {
    /// Creates a cluster whose superuser is `user` and starts it.
    pub fn start(user: &str) -> Result<PostgresServer> {
        let server = PostgresServer::create()?;
        let data = server.data().to_string_lossy().into_owned();
        server.run(
            "initdb",
            &["-D", &data, "-U", user, "--auth=trust", "-E", "UTF8"],
        )?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    /// Creates a cluster whose superuser is `user` with `password` and starts it with
    /// `ssl = on` (the certificate and key `server.pem` and `server.key` of `certs`, from
    /// scripts/make-certs.sh) and scram-sha-256 over TLS the only way in by TCP.
    pub fn start_tls(user: &str, password: &str, certs: &Path) -> Result<PostgresServer> {
        let mut server = PostgresServer::create()?;
        let data = server.data();
        let password_file = server.dir.join("password");
        fs::write(&password_file, password)?;
        server.chown(&password_file)?;
        let (data_text, password_text) = (
            data.to_string_lossy().into_owned(),
            password_file.to_string_lossy().into_owned(),
        );
        server.run(
            "initdb",
            &[
                "-D",
                &data_text,
                "-U",
                user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                &password_text,
                "-E",
                "UTF8",
            ],
        )?;
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )?;
        for name in ["server.pem", "server.key"] {
            let copy = data.join(name);
            fs::copy(certs.join(name), &copy)?;
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o600))?;
            server.chown(&copy)?;
        }
        server.options = "-c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key".into();
        server.pg_ctl_start()?;
        Ok(server)
    }

    fn create() -> Result<PostgresServer> {
        let bin = newest_bin()?;
        let dir = std::env::temp_dir().join(format!("gm-pg-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir)?;
        let server = PostgresServer {
            bin,
            port: crate::free_port()?,
            dir,
            as_postgres: running_as_root()?,
            options: String::new(),
        };
        // initdb refuses to run as root: the cluster belongs to the postgres OS user.
        server.chown(&server.dir)?;
        Ok(server)
    }

    /// Gives `path` to the postgres OS user when the server runs as it.
    fn chown(&self, path: &Path) -> Result<()> {
        if self.as_postgres {
            checked(Command::new("chown").arg("postgres:").arg(path).output()?)?;
        }
        Ok(())
    }

    /// This server's port.
    pub fn port(&self) -> u16 {
        self.port
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
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.dir.to_string_lossy(),
            self.options
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
