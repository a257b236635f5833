//! The platform on secured services (docs/USER_GUIDE.md, "Production"): a private broker that
//! speaks SASL_SSL (PLAIN and SCRAM, a client certificate required) with an authorizer, each binary its own principal with the
//! ACLs scripts/kafka-grant.sh grants, and a private PostgreSQL that takes only TLS with a
//! password, both with the certificates of scripts/make-certs.sh. The flow saves every event
//! exactly once, as on plaintext; a connection the other side refuses (a wrong password, an
//! unknown CA, plaintext to a TLS port, a certificate for another host, missing ACLs) stops the
//! stream at once with the setting to check, and no secret in its output.

mod common;

use std::path::PathBuf;

use anyhow::{ensure, Result};
use common::{assert_saved_as_modelled, counts_in, delivered_from, expected_counts, finish};
use globalmart_core::config::Secret;
use globalmart_core::db::{Db, PgSettings};
use globalmart_core::kafka::Refusals;
use globalmart_core::pg_tls::{PgTls, SslMode};
use globalmart_generator::config::Config as GeneratorConfig;
use globalmart_generator::generate;
use globalmart_generator::producer::Output;
use globalmart_testkit::{
    connect, create_platform_topics, database_env, make_certs, Cli, KafkaBroker, PostgresServer,
    SaslUser,
};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-stream");

/// The folders of the servers' certificates and of a second CA's, which they do not know.
const CERTS: &str = "certs";
const OTHER_CA: &str = "other-ca";

const KAFKA_PASSWORD: &str = "k4fka-Secr3t";
const GENERATOR_PASSWORD: &str = "gener4tor-Secr3t";
const PG_PASSWORD: &str = "pg-TLS-Secr3t";

/// A secured broker and database of this test's own, and the certificates they use.
struct Secured {
    dir: PathBuf,
    broker: KafkaBroker,
    _postgres: PostgresServer,
    /// The migrated realtime database, reached as a managed one is: verify-full on `localhost`.
    realtime: PgSettings,
}

impl Secured {
    async fn start() -> Result<Secured> {
        let stack_user = "globalmart_user".to_owned();
        let dir = std::env::temp_dir().join(format!("gm-secure-{}", uuid::Uuid::new_v4().simple()));
        let certs = dir.join(CERTS);
        make_certs(&certs)?;
        make_certs(&dir.join(OTHER_CA))?;
        // One principal per binary, each allowed what USER_GUIDE documents and no more.
        let users = [
            SaslUser {
                name: "stream".into(),
                password: KAFKA_PASSWORD.into(),
            },
            SaslUser {
                name: "generator".into(),
                password: GENERATOR_PASSWORD.into(),
            },
        ];
        let (broker, postgres) = tokio::task::spawn_blocking({
            let (certs, stack_user) = (certs.clone(), stack_user.clone());
            move || {
                let broker = KafkaBroker::start_secure(&certs, &users)?;
                broker.grant("User:stream", "User:generator", "globalmart-stream")?;
                let postgres = PostgresServer::start_tls(&stack_user, PG_PASSWORD, &certs)?;
                anyhow::Ok((broker, postgres))
            }
        })
        .await??;
        create_platform_topics(&broker.bootstrap_servers()).await?;
        let template = PgSettings {
            host: "localhost".into(),
            port: postgres.port(),
            user: stack_user,
            password: Secret::new(PG_PASSWORD),
            dbname: "postgres".into(),
            // The test server is reached by address, which the certificate does not name.
            tls: PgTls {
                mode: SslMode::VerifyCa,
                root_cert: Some(certs.join("ca.pem")),
            },
        };
        let created = postgres.database(&template, Db::Realtime).await?;
        let realtime = PgSettings {
            host: "localhost".into(),
            tls: PgTls {
                mode: SslMode::VerifyFull,
                ..created.tls.clone()
            },
            ..created
        };
        Ok(Secured {
            dir,
            broker,
            _postgres: postgres,
            realtime,
        })
    }

    /// File `name` of the certificates the servers use.
    fn cert(&self, name: &str) -> String {
        self.file(CERTS, name)
    }

    /// File `name` of a second CA's set, which the servers do not know.
    fn other(&self, name: &str) -> String {
        self.file(OTHER_CA, name)
    }

    fn file(&self, set: &str, name: &str) -> String {
        let path = self.dir.join(set).join(name);
        path.to_string_lossy().into_owned()
    }

    fn secure_bootstrap(&self) -> String {
        self.broker.secure_bootstrap_servers().unwrap_or_default()
    }

    /// The stream's Kafka settings for the SASL_SSL listener with `mechanism`.
    fn kafka_env(&self, mechanism: &str) -> Vec<(String, String)> {
        [
            ("KAFKA_BOOTSTRAP_SERVERS", self.secure_bootstrap()),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".into()),
            ("KAFKA_SASL_MECHANISM", mechanism.into()),
            ("KAFKA_SASL_USERNAME", "stream".into()),
            ("KAFKA_SASL_PASSWORD", KAFKA_PASSWORD.into()),
            ("KAFKA_SSL_CA_LOCATION", self.cert("ca.pem")),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", self.cert("client.pem")),
            ("KAFKA_SSL_KEY_LOCATION", self.cert("client.key")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for Secured {
    fn drop(&mut self) {
        // Best effort: a leftover temporary folder is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_over_sasl_ssl_into_a_tls_database_saves_every_event_exactly_once() -> Result<()> {
    let secured = Secured::start().await?;
    // The generator over SCRAM-SHA-512 as its own principal, in process (the real librdkafka
    // client).
    let (ca, cert, key) = (
        secured.cert("ca.pem"),
        secured.cert("client.pem"),
        secured.cert("client.key"),
    );
    let bootstrap = secured.secure_bootstrap();
    let config: GeneratorConfig = globalmart_core::config::parse_from([
        "globalmart-generator",
        "--kafka-bootstrap-servers",
        &bootstrap,
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-sasl-mechanism",
        "SCRAM-SHA-512",
        "--kafka-sasl-username",
        "generator",
        "--kafka-sasl-password",
        GENERATOR_PASSWORD,
        "--kafka-ssl-ca-location",
        &ca,
        "--kafka-ssl-certificate-location",
        &cert,
        "--kafka-ssl-key-location",
        &key,
        "--seed",
        "7",
        "--users",
        "500",
        "--products",
        "100",
        "--rate",
        "max",
        "--count",
        "20000",
        "--stats-interval",
        "1h",
        "--metrics-addr",
        "127.0.0.1:0",
    ])?;
    let stop = CancellationToken::new();
    let refusals = Refusals::new(stop.clone());
    let output = Output::for_config(&config, refusals.clone())?;
    let delivery = generate::run(&config, output, stop).await?;
    refusals.check()?;
    ensure!(
        delivery.failed == 0 && delivery.delivered >= 20_000,
        "the generator delivered {} and lost {}",
        delivery.delivered,
        delivery.failed
    );

    // The stream over PLAIN, into the database by verify-full.
    let mut command = std::process::Command::new(BIN);
    command
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .envs(secured.kafka_env("PLAIN"))
        .envs(database_env(Db::Realtime, &secured.realtime))
        .env("STREAM_EXIT_WHEN_IDLE", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn()?;
    let log = tokio::task::spawn_blocking(move || finish(child)).await??;
    for secret in [KAFKA_PASSWORD, GENERATOR_PASSWORD, PG_PASSWORD] {
        assert!(!log.contains(secret), "a secret in the stream's log");
    }

    let events = delivered_from(&secured.broker.bootstrap_servers(), "").await?;
    assert_eq!(events.len() as u64, delivery.delivered);
    let client = connect(&secured.realtime).await?;
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?
        .get(0);
    assert!(ssl, "the test's own connection is not TLS");
    assert_eq!(counts_in(&client).await?, expected_counts(&events));
    assert_saved_as_modelled(&client, &events).await?;
    Ok(())
}

/// What is wrong, the settings changed from the good ones (empty: removed), and what the error
/// must name.
type Case = (&'static str, Vec<(&'static str, String)>, &'static str);

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_stops_the_stream_at_once_naming_the_setting() -> Result<()> {
    let secured = Secured::start().await?;
    let cases: Vec<Case> = vec![
        (
            "wrong Kafka password (SCRAM-SHA-256)",
            vec![
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256".into()),
                ("KAFKA_SASL_PASSWORD", "wr0ng-Kafka".into()),
            ],
            "KAFKA_SASL_PASSWORD",
        ),
        (
            "broker certificate from an unknown CA",
            vec![("KAFKA_SSL_CA_LOCATION", secured.other("ca.pem"))],
            "KAFKA_SSL_CA_LOCATION",
        ),
        (
            "no client certificate (mutual TLS)",
            vec![
                ("KAFKA_SSL_CERTIFICATE_LOCATION", String::new()),
                ("KAFKA_SSL_KEY_LOCATION", String::new()),
            ],
            "KAFKA_SSL_CERTIFICATE_LOCATION",
        ),
        (
            "a client certificate from an unknown CA",
            vec![
                (
                    "KAFKA_SSL_CERTIFICATE_LOCATION",
                    secured.other("client.pem"),
                ),
                ("KAFKA_SSL_KEY_LOCATION", secured.other("client.key")),
            ],
            "KAFKA_SSL_CERTIFICATE_LOCATION",
        ),
        (
            "plaintext to the SASL_SSL listener",
            vec![
                ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT".into()),
                ("KAFKA_SASL_USERNAME", String::new()),
                ("KAFKA_SASL_PASSWORD", String::new()),
                ("KAFKA_SSL_CA_LOCATION", String::new()),
                ("KAFKA_SSL_CERTIFICATE_LOCATION", String::new()),
                ("KAFKA_SSL_KEY_LOCATION", String::new()),
            ],
            "KAFKA_SECURITY_PROTOCOL",
        ),
        (
            "a principal without the stream's ACLs",
            vec![
                ("KAFKA_SASL_USERNAME", "generator".into()),
                ("KAFKA_SASL_PASSWORD", GENERATOR_PASSWORD.into()),
            ],
            "the ACLs of KAFKA_SASL_USERNAME's principal",
        ),
        (
            "wrong database password",
            vec![("POSTGRES_REALTIME_PASSWORD", "wr0ng-Postgres".into())],
            "POSTGRES_REALTIME_PASSWORD",
        ),
        (
            "database certificate from an unknown CA",
            vec![("POSTGRES_REALTIME_SSLROOTCERT", secured.other("ca.pem"))],
            "POSTGRES_REALTIME_SSLROOTCERT",
        ),
        (
            "verify-full on a host the certificate does not name",
            vec![("POSTGRES_REALTIME_HOST", "127.0.0.1".into())],
            "POSTGRES_REALTIME_HOST",
        ),
        (
            "plaintext to a database that takes only TLS",
            vec![("POSTGRES_REALTIME_SSLMODE", "disable".into())],
            "POSTGRES_REALTIME_SSLMODE",
        ),
    ];
    for (what, changes, named) in cases {
        eprintln!("DEBUG case {what}");
        let mut cli = Cli::new(BIN)
            .env("METRICS_ADDR", "127.0.0.1:0")
            // An outage would be waited for (and logged) all this time.
            .env("STREAM_DB_WAIT_SECONDS", "50");
        for (key, value) in secured.kafka_env("PLAIN") {
            cli = cli.env(&key, &value);
        }
        cli = cli.database(Db::Realtime, &secured.realtime);
        for (key, value) in &changes {
            cli = if value.is_empty() {
                cli.env_remove(key)
            } else {
                cli.env(key, value)
            };
        }
        let out = cli.run()?;
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, Some(1), "{what}: {all}");
        assert!(all.contains("refused the connection"), "{what}: {all}");
        assert!(
            all.contains(named),
            "{what}: the error must name {named}: {all}"
        );
        assert!(
            !all.contains("database not reachable, retrying"),
            "{what}: a refusal is not an outage: {all}"
        );
        for secret in [
            KAFKA_PASSWORD,
            GENERATOR_PASSWORD,
            PG_PASSWORD,
            "wr0ng-Kafka",
            "wr0ng-Postgres",
        ] {
            assert!(
                !all.contains(secret),
                "{what}: a secret in the output: {all}"
            );
        }
    }
    Ok(())
}
