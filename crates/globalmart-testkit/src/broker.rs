//! A private Apache Kafka broker for fault and security tests: the same jars and
//! `server.properties` template as `scripts/dev-up.sh` (and, for a secure one, the same
//! `secure.properties`), on free localhost ports and a temporary data folder, so a test can kill
//! and restart it (by the pid it started) without touching the shared broker.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A broker process this test owns.
#[derive(Debug)]
pub struct KafkaBroker {
    child: Option<Child>,
    kafka_home: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    secure_port: Option<u16>,
}

/// The user a secure broker knows, by PLAIN and by both SCRAM mechanisms.
#[derive(Debug, Clone)]
pub struct SaslUser {
    pub name: String,
    pub password: String,
}

impl KafkaBroker {
    /// Starts a new single-node KRaft broker and waits until it answers metadata requests.
    pub fn start() -> Result<KafkaBroker> {
        KafkaBroker::start_with(None)
    }

    /// Starts a broker with a SASL_SSL listener too ([`KafkaBroker::secure_bootstrap_servers`]):
    /// TLS with the certificates of `certs` (scripts/make-certs.sh; clients must present one
    /// signed by its CA), `users` known by PLAIN,
    /// SCRAM-SHA-256 and SCRAM-SHA-512, and an authorizer (they may do only what ACLs allow:
    /// scripts/kafka-grant.sh). The PLAINTEXT listener, a super user's, stays for the test's own
    /// admin.
    pub fn start_secure(certs: &Path, users: &[SaslUser]) -> Result<KafkaBroker> {
        KafkaBroker::start_with(Some((certs, users)))
    }

    fn start_with(secure_with: Option<(&Path, &[SaslUser])>) -> Result<KafkaBroker> {
        let kafka_home = kafka_home()?;
        let dir = std::env::temp_dir().join(format!("gm-kafka-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let [port, controller_port, secure] = crate::free_ports()?;
        let read = |name: &str| {
            fs::read_to_string(Path::new(REPO).join("scripts/kafka").join(name))
                .with_context(|| format!("reading scripts/kafka/{name}"))
        };
        let mut template = read("server.properties")?;
        let mut secure_port = None;
        let mut format_extra = Vec::new();
        if let Some((certs, users)) = secure_with {
            secure_port = Some(secure);
            let plain: Vec<String> = (users.iter())
                .map(|u| format!("user_{}=\"{}\"", u.name, u.password))
                .collect();
            template.push_str(
                &read("secure.properties")?
                    .replace("@SECURE_PORT@", &secure.to_string())
                    .replace("@CERTS@", &certs.to_string_lossy())
                    .replace("@PLAIN_USERS@", &plain.join(" ")),
            );
            for user in users {
                for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
                    format_extra.push("--add-scram".to_owned());
                    format_extra.push(format!(
                        "{mechanism}=[name={},password={}]",
                        user.name, user.password
                    ));
                }
            }
        }
        let config = dir.join("server.properties");
        fs::write(
            &config,
            template
                .replace("@BROKER_PORT@", &port.to_string())
                .replace("@CONTROLLER_PORT@", &controller_port.to_string())
                .replace("@LOG_DIR@", &data.to_string_lossy()),
        )?;
        let mut broker = KafkaBroker {
            child: None,
            kafka_home,
            dir,
            config,
            port,
            secure_port,
        };
        let cluster_id = broker.java_output(&["kafka.tools.StorageTool", "random-uuid"])?;
        let config = broker.config.to_string_lossy().into_owned();
        let mut format = vec![
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id.trim(),
            "-c",
            &config,
        ];
        format.extend(format_extra.iter().map(String::as_str));
        broker.java_output(&format)?;
        broker.spawn()?;
        Ok(broker)
    }

    /// `localhost:<port>` of this broker.
    pub fn bootstrap_servers(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// `localhost:<port>` of the SASL_SSL listener of a broker started with
    /// [`KafkaBroker::start_secure`].
    pub fn secure_bootstrap_servers(&self) -> Option<String> {
        self.secure_port.map(|port| format!("localhost:{port}"))
    }

    /// Grants `stream` and `generator` (principals, `User:<name>`) their binaries' ACLs for
    /// consumer group `group`, with scripts/kafka-grant.sh (the set docs/USER_GUIDE.md
    /// documents), over the PLAINTEXT listener.
    pub fn grant(&self, stream: &str, generator: &str, group: &str) -> Result<()> {
        let output = Command::new("bash")
            .arg(Path::new(REPO).join("scripts/kafka-grant.sh"))
            .args(["--bootstrap-server", &self.bootstrap_servers()])
            .args([
                "--stream",
                stream,
                "--generator",
                generator,
                "--group",
                group,
            ])
            .output()
            .context("running scripts/kafka-grant.sh")?;
        if !output.status.success() {
            bail!(
                "scripts/kafka-grant.sh failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the broker with SIGKILL (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing the test broker")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the broker again on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kafka.log"))?;
        let child = self
            .java()
            .args(["-Xms128m", "-Xmx512m", "kafka.Kafka"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting java (is Java 17 installed? scripts/dev-up.sh installs it)")?;
        self.child = Some(child);
        self.wait_until_ready(Duration::from_secs(60))
    }

    fn wait_until_ready(&mut self, max_wait: Duration) -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()?;
        let started = Instant::now();
        while started.elapsed() < max_wait {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("test broker exited with {status}; see {}", self.log_path());
                }
            }
            if consumer
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "test broker on port {} not ready after {max_wait:?}; see {}",
            self.port,
            self.log_path()
        )
    }

    fn log_path(&self) -> String {
        self.dir.join("kafka.log").to_string_lossy().into_owned()
    }

    fn java(&self) -> Command {
        let mut command = Command::new("java");
        command
            .arg(format!(
                "-Dlog4j2.configurationFile={REPO}/scripts/kafka/log4j2.properties"
            ))
            .arg("-cp")
            .arg(format!("{}/libs/*", self.kafka_home.to_string_lossy()));
        command
    }

    fn java_output(&self, args: &[&str]) -> Result<String> {
        let output = self.java().args(args).output()?;
        if !output.status.success() {
            bail!(
                "{} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("testkit: {e:#}");
        }
        // Best effort: a leftover temporary folder is harmless.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where dev-up.sh cached the Kafka jars: `$GLOBALMART_CACHE/kafka-<version>` (default cache
/// `~/.cache/globalmart`), the version pinned in `scripts/kafka/pom.xml`.
fn kafka_home() -> Result<PathBuf> {
    let pom = fs::read_to_string(Path::new(REPO).join("scripts/kafka/pom.xml"))?;
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .context("no <kafka.version> in scripts/kafka/pom.xml")?;
    let cache = match std::env::var_os("GLOBALMART_CACHE") {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache/globalmart"),
    };
    let home = cache.join(format!("kafka-{version}"));
    if !home.join("libs").is_dir() {
        bail!(
            "no Kafka jars in {} (run scripts/dev-up.sh first)",
            home.display()
        );
    }
    Ok(home)
}
