//! Test support on the real local stack (`scripts/dev-up.sh`): every integration test starts
//! with [`TestStack::new`], which gives it its own migrated realtime and warehouse databases, its
//! own topics and its own consumer group, and removes them when dropped, so tests run in
//! parallel without seeing each other's rows. Fault tests that stop a broker or a database use
//! [`KafkaBroker`] or [`PostgresServer`], private servers they start and kill themselves; tests
//! that only cut the connection put a [`Proxy`] in front of the shared database.

mod broker;
mod cli;
pub mod metrics;
mod postgres;
mod proxy;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use globalmart_core::config::{self, DbArgs, KafkaArgs, Realtime, Warehouse};
use globalmart_core::db::{self, Db, PgSettings};
use globalmart_core::topics::{Topic, DEFAULT_PARTITIONS};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

pub use broker::{KafkaBroker, SaslUser};
pub use cli::{Cli, CliOutput};
pub use postgres::PostgresServer;
pub use proxy::Proxy;

/// The local stack's addresses: the same keys and defaults as the binaries
/// (docs/ARCHITECTURE.md, "Configuration").
#[derive(Debug, Parser)]
struct Local {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    realtime: DbArgs<Realtime>,
    #[command(flatten)]
    warehouse: DbArgs<Warehouse>,
}

/// An isolated slice of the local stack for one test.
#[derive(Debug)]
pub struct TestStack {
    /// This test's realtime database.
    pub realtime: PgSettings,
    /// This test's warehouse database.
    pub warehouse: PgSettings,
    /// The broker's bootstrap servers.
    pub bootstrap_servers: String,
    /// This test's consumer group.
    pub group_id: String,
    /// Unique prefix of this test's topics and databases.
    pub id: String,
    topics: Vec<String>,
}

impl TestStack {
    /// Creates this test's databases (migrated) and topics (every platform topic, prefixed).
    pub async fn new() -> Result<TestStack> {
        let local: Local = config::parse_from(["testkit"])?;
        let id = format!(
            "gm_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let realtime = create_database(&local.realtime.settings, &id, Db::Realtime).await?;
        let warehouse = create_database(&local.warehouse.settings, &id, Db::Warehouse).await?;
        let mut stack = TestStack {
            realtime,
            warehouse,
            bootstrap_servers: local.kafka.bootstrap_servers,
            group_id: format!("{id}-group"),
            id,
            topics: Vec::new(),
        };
        for topic in Topic::ALL {
            stack
                .create_topic(
                    &stack.topic(topic),
                    DEFAULT_PARTITIONS,
                    topic.is_compacted(),
                )
                .await?;
        }
        Ok(stack)
    }

    /// This test's name for `topic`.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix(), topic.name())
    }

    /// The `KAFKA_TOPIC_PREFIX` that points a binary at this test's topics.
    pub fn topic_prefix(&self) -> String {
        format!("{}-", self.id)
    }

    /// Creates one more topic for this test (deleted with the others).
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        compacted: bool,
    ) -> Result<()> {
        create_topic(&self.bootstrap_servers, name, partitions, compacted).await?;
        self.topics.push(name.to_owned());
        Ok(())
    }

    /// A client on this test's realtime database.
    pub async fn realtime_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.realtime).await
    }

    /// A client on this test's warehouse database.
    pub async fn warehouse_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.warehouse).await
    }
}

impl Drop for TestStack {
    /// Drops the databases and deletes the topics. Drop cannot be async, and the test's runtime
    /// may be shutting down, so the clean-up runs on a runtime of its own in a new thread.
    fn drop(&mut self) {
        let (realtime, warehouse) = (self.realtime.clone(), self.warehouse.clone());
        let (bootstrap, topics) = (self.bootstrap_servers.clone(), self.topics.clone());
        let cleanup = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                for settings in [&realtime, &warehouse] {
                    drop_database(settings).await?;
                }
                let admin = admin_client(&bootstrap)?;
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                admin.delete_topics(&names, &AdminOptions::new()).await?;
                Ok(())
            })
        });
        let failure = match cleanup.join() {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("clean-up of {} failed: {e:#}", self.id),
            Err(_) => format!("clean-up of {} panicked", self.id),
        };
        // A leak is a bug: fail the test, unless it is failing already (a second panic while
        // unwinding would abort and hide the first).
        if std::thread::panicking() {
            eprintln!("testkit: {failure}");
        } else {
            panic!("testkit: {failure}");
        }
    }
}

/// The `POSTGRES_<DB>_*` variables that point a binary at database `settings` of kind `db`.
pub fn database_env(db: Db, settings: &PgSettings) -> Vec<(String, String)> {
    let key = |field: &str| format!("{}_{field}", db.env_prefix());
    let mut env = vec![
        (key("HOST"), settings.host.clone()),
        (key("PORT"), settings.port.to_string()),
        (key("USER"), settings.user.clone()),
        (key("PASSWORD"), settings.password.expose().to_owned()),
        (key("DB"), settings.dbname.clone()),
        (key("SSLMODE"), settings.tls.mode.name().to_owned()),
    ];
    if let Some(root_cert) = &settings.tls.root_cert {
        env.push((key("SSLROOTCERT"), root_cert.display().to_string()));
    }
    env
}

/// A connected client (its connection driven by a spawned task).
pub async fn connect(settings: &PgSettings) -> Result<tokio_postgres::Client> {
    settings
        .connect("globalmart-test")
        .await
        .with_context(|| format!("connecting to {settings} (is scripts/dev-up.sh running?)"))
}

pub(crate) async fn create_database(server: &PgSettings, name: &str, db: Db) -> Result<PgSettings> {
    let admin = connect(&server.with_dbname("postgres")).await?;
    // The name is generated above from a UUID, never from input: safe to format in.
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating database {name} on {server}"))?;
    let settings = server.with_dbname(name);
    let mut client = connect(&settings).await?;
    db::migrate(&mut client, db).await?;
    Ok(settings)
}

/// Drops a test database. A connection of another role (a test's read-only client) may still be
/// closing, and FORCE cannot end it for us, so a failure is retried for a few seconds.
async fn drop_database(settings: &PgSettings) -> Result<()> {
    let admin = connect(&settings.with_dbname("postgres")).await?;
    let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", settings.dbname);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match admin.batch_execute(&statement).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt == 50 => {
                anyhow::bail!("dropping {}: {}", settings.dbname, db::describe(&e))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates topic `name` on the broker at `bootstrap_servers` (compacted: a catalogue topic).
pub async fn create_topic(
    bootstrap_servers: &str,
    name: &str,
    partitions: i32,
    compacted: bool,
) -> Result<()> {
    let admin = admin_client(bootstrap_servers)?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    if compacted {
        topic = topic.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&topic], &options).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// Creates every platform topic, 3 partitions each, under their plain names (for a private
/// broker).
pub async fn create_platform_topics(bootstrap_servers: &str) -> Result<()> {
    for topic in Topic::ALL {
        let (name, compacted) = (topic.name(), topic.is_compacted());
        create_topic(bootstrap_servers, name, DEFAULT_PARTITIONS, compacted).await?;
    }
    Ok(())
}

/// Makes a private CA and localhost certificates in `dir` with scripts/make-certs.sh (the same
/// files `scripts/dev-up.sh --secure` uses).
pub fn make_certs(dir: &std::path::Path) -> Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/make-certs.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .output()
        .context("running scripts/make-certs.sh")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/make-certs.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A localhost port nothing listens on now, for a private server or a binary's METRICS_ADDR.
pub fn free_port() -> Result<u16> {
    let [port] = free_ports()?;
    Ok(port)
}

/// `N` different localhost ports nothing listens on now. Each is held until all are found: a
/// port given back at once can be the next one handed out (a broker once got the same port for
/// its client and controller listeners, and would not start).
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn admin_client(bootstrap_servers: &str) -> Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()?)
}
