//! The one configuration loader (docs/ARCHITECTURE.md, "Configuration"). Every setting is a clap argument with an
//! environment key, so precedence is flag > environment > `.env` > default and `--help` lists
//! every key. A bad value stops the program with the key, the value and what is allowed.

use std::ffi::OsString;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser};

use crate::db::{Db, PgSettings};
use crate::pg_tls::{PgTls, SslMode};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value its parser refuses.
    #[error("invalid {key} \"{value}\": {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    /// `.env` exists but cannot be read.
    #[error("cannot read .env: {0}")]
    DotEnv(String),
    /// Anything else clap reports: `--help`, `--version`, an unknown flag, a missing value.
    #[error(transparent)]
    Cli(#[from] clap::Error),
}

/// Loads `T` from the command line, the environment and `.env`, or prints why not and exits
/// (status 2, clap's usage-error status; `--help` and `--version` exit 0).
pub fn load<T: Parser>() -> T {
    let loaded = read_dotenv()
        .and_then(|()| secrets_from_files::<T>(|key| std::env::var_os(key)))
        .and_then(|secrets| {
            for (key, value) in secrets {
                // Like .env above: before the program reads any setting.
                std::env::set_var(key, value);
            }
            parse_from::<T, _, _>(std::env::args_os())
        });
    match loaded {
        Ok(config) => config,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

/// Parses `args` (the first is the program name) with the current environment, without
/// reading `.env`: the testable core of [`load`].
pub fn parse_from<T, I, S>(args: I) -> Result<T, ConfigError>
where
    T: Parser,
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    T::try_parse_from(args).map_err(|e| name_the_key::<T>(e))
}

/// Adds `.env` to the environment; variables already set keep their value.
fn read_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::DotEnv(e.to_string())),
    }
}

/// The secrets of `T` (its settings whose values are never shown, such as the database
/// passwords) given as `<KEY>_FILE`, the path of a file holding the value (how Docker and
/// Kubernetes mount secrets): the keys to set and their values, without the file's final
/// newline. `var` reads the environment.
fn secrets_from_files<T: CommandFactory>(
    var: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut secrets = Vec::new();
    for arg in T::command().get_arguments() {
        let Some(key) = arg.get_env().filter(|_| arg.is_hide_env_values_set()) else {
            continue;
        };
        let key = key.to_string_lossy().into_owned();
        let file_key = format!("{key}_FILE");
        let Some(path) = var(&file_key) else {
            continue;
        };
        let invalid = |allowed: String| ConfigError::Invalid {
            key: file_key.clone(),
            value: path.to_string_lossy().into_owned(),
            allowed,
        };
        if var(&key).is_some() {
            return Err(invalid(format!("{key} is set too; set one of the two")));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(format!("cannot read the file: {e}")))?;
        secrets.push((key, text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(secrets)
}

/// Turns clap's "invalid value for '--rate <N>'" into "invalid DATA_GEN_EVENTS_PER_SECOND": a
/// user who set the environment variable should see the name they set.
fn name_the_key<T: CommandFactory>(err: clap::Error) -> ConfigError {
    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return ConfigError::Cli(err);
    }
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(flag), Some(value)) = (
        context(ContextKind::InvalidArg),
        context(ContextKind::InvalidValue),
    ) else {
        return ConfigError::Cli(err);
    };
    let allowed = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) => format!("expected one of {}", values.join(", ")),
        _ => std::error::Error::source(&err)
            .map(|source| source.to_string())
            .unwrap_or_else(|| "not accepted".to_owned()),
    };
    let command = T::command();
    let key = command
        .get_arguments()
        .find(|arg| {
            arg.get_long().is_some_and(|long| {
                let rest = flag.strip_prefix("--").and_then(|f| f.strip_prefix(long));
                matches!(rest, Some(r) if r.is_empty() || r.starts_with([' ', '=']))
            })
        })
        .and_then(Arg::get_env)
        .map(|env| env.to_string_lossy().into_owned())
        .unwrap_or(flag);
    ConfigError::Invalid {
        key,
        value,
        allowed,
    }
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Kafka connection settings, shared by every binary that talks to the broker.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka brokers, comma separated host:port.
    #[arg(
        long = "kafka-bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,

    /// Prefix added to every topic name (isolated test runs, shared clusters).
    #[arg(
        long = "kafka-topic-prefix",
        env = "KAFKA_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,

    /// How to reach the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS with a
    /// user and password: managed Kafka such as Confluent Cloud).
    #[arg(
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        value_enum,
        ignore_case = true,
        default_value = "PLAINTEXT"
    )]
    pub security_protocol: SecurityProtocol,

    /// SASL mechanism (with SASL_PLAINTEXT or SASL_SSL): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(
        long = "kafka-sasl-mechanism",
        env = "KAFKA_SASL_MECHANISM",
        value_enum,
        ignore_case = true,
        default_value = "PLAIN"
    )]
    pub sasl_mechanism: SaslMechanism,

    /// SASL user name (Confluent Cloud: the API key).
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password (Confluent Cloud: the API secret; never logged); or
    /// KAFKA_SASL_PASSWORD_FILE, the path of a file holding it.
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        value_parser = secret
    )]
    pub sasl_password: Option<Secret>,

    /// PEM file of the CA certificates that sign the brokers' certificates (with SSL or
    /// SASL_SSL); unset: the system's CAs.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION", value_parser = readable_file)]
    pub ssl_ca_location: Option<PathBuf>,

    /// PEM file of this client's certificate, for brokers that authenticate clients by
    /// certificate (mutual TLS); with KAFKA_SSL_KEY_LOCATION.
    #[arg(
        long = "kafka-ssl-certificate-location",
        env = "KAFKA_SSL_CERTIFICATE_LOCATION",
        value_parser = readable_file
    )]
    pub ssl_certificate_location: Option<PathBuf>,

    /// PEM file of this client's private key (mutual TLS).
    #[arg(
        long = "kafka-ssl-key-location",
        env = "KAFKA_SSL_KEY_LOCATION",
        value_parser = readable_file
    )]
    pub ssl_key_location: Option<PathBuf>,

    /// Password of the private key, when it is encrypted (never logged); or
    /// KAFKA_SSL_KEY_PASSWORD_FILE.
    #[arg(
        long = "kafka-ssl-key-password",
        env = "KAFKA_SSL_KEY_PASSWORD",
        hide_env_values = true,
        value_parser = secret
    )]
    pub ssl_key_password: Option<Secret>,
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The property value (`SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether a user and password are sent.
    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether the connection is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// Kafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The property value (`SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

impl KafkaArgs {
    /// The broker-side name of `topic`.
    pub fn topic_name(&self, topic: crate::topics::Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }
}

/// Marks which database a [`DbArgs`] configures.
pub trait Database {
    /// The database.
    const DB: Db;
}

/// Marker for the realtime database (`POSTGRES_REALTIME_*`).
#[derive(Debug, Clone, Copy)]
pub struct Realtime;

/// Marker for the warehouse database (`POSTGRES_WAREHOUSE_*`).
#[derive(Debug, Clone, Copy)]
pub struct Warehouse;

impl Database for Realtime {
    const DB: Db = Db::Realtime;
}

impl Database for Warehouse {
    const DB: Db = Db::Warehouse;
}

/// PostgreSQL settings of database `D`: `--realtime-host` / `POSTGRES_REALTIME_HOST` and so on.
/// One generic implementation serves both databases, so their keys cannot drift apart.
#[derive(Debug, Clone)]
pub struct DbArgs<D> {
    /// The connection settings.
    pub settings: PgSettings,
    database: PhantomData<D>,
}

const DB_FIELDS: [&str; 7] = [
    "host",
    "port",
    "user",
    "password",
    "db",
    "sslmode",
    "sslrootcert",
];

fn db_arg(db: Db, field: &'static str) -> Arg {
    let (label, prefix) = (db.label(), db.env_prefix());
    let (default, help): (Option<String>, String) = match field {
        "host" => (Some("localhost".into()), format!("{label} PostgreSQL host")),
        "port" => (
            Some(db.default_port().to_string()),
            format!("{label} PostgreSQL port"),
        ),
        "user" => (
            Some("globalmart_user".into()),
            format!("{label} PostgreSQL role"),
        ),
        "password" => (
            Some(db.default_password().into()),
            format!(
                "Password of the {label} role (never logged); or {prefix}_PASSWORD_FILE, the \
                 path of a file holding it"
            ),
        ),
        "sslmode" => (
            Some("prefer".into()),
            format!(
                "TLS to the {label} database, as libpq's sslmode: disable, prefer (TLS when \
                 offered, unchecked), require (TLS, checked only against {prefix}_SSLROOTCERT \
                 when set), verify-ca (a trusted certificate), verify-full (trusted and naming \
                 the host: use it for managed databases)"
            ),
        ),
        "sslrootcert" => (
            None,
            format!(
                "PEM file of the CA certificates to trust for the {label} database (e.g. the \
                 RDS bundle) instead of the system's"
            ),
        ),
        _ => (
            Some(db.default_dbname().into()),
            format!("{label} database name"),
        ),
    };
    let arg = Arg::new(format!("{label}_{field}"))
        .long(format!("{label}-{field}"))
        .env(format!("{prefix}_{}", field.to_uppercase()))
        .value_name(field.to_uppercase())
        .help(help);
    let arg = match default {
        Some(default) => arg.default_value(default),
        None => arg,
    };
    match field {
        "port" => arg.value_parser(clap::value_parser!(u16).range(1..)),
        "password" => arg.hide_env_values(true).hide_default_value(true),
        "sslmode" => arg.value_parser(clap::value_parser!(SslMode)),
        "sslrootcert" => arg.value_parser(readable_file),
        _ => arg,
    }
}

/// A path to a file this process can read, so a wrong path stops the program at start,
/// naming the key, not at the first connection.
pub fn readable_file(text: &str) -> Result<PathBuf, String> {
    match std::fs::File::open(text) {
        Ok(_) => Ok(PathBuf::from(text)),
        Err(e) => Err(format!("cannot read the file: {e}")),
    }
}

impl<D: Database> Args for DbArgs<D> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        DB_FIELDS
            .into_iter()
            .fold(cmd, |cmd, field| cmd.arg(db_arg(D::DB, field)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<D: Database> FromArgMatches for DbArgs<D> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let label = D::DB.label();
        let text = |field: &str| -> Result<String, clap::Error> {
            matches
                .get_one::<String>(&format!("{label}_{field}"))
                .cloned()
                .ok_or_else(|| clap::Error::new(ErrorKind::MissingRequiredArgument))
        };
        let port = matches
            .get_one::<u16>(&format!("{label}_port"))
            .copied()
            .ok_or_else(|| clap::Error::new(ErrorKind::MissingRequiredArgument))?;
        Ok(DbArgs {
            settings: PgSettings {
                host: text("host")?,
                port,
                user: text("user")?,
                password: Secret::new(text("password")?),
                dbname: text("db")?,
                tls: PgTls {
                    mode: matches
                        .get_one::<SslMode>(&format!("{label}_sslmode"))
                        .copied()
                        .unwrap_or(SslMode::Prefer),
                    root_cert: matches
                        .get_one::<PathBuf>(&format!("{label}_sslrootcert"))
                        .cloned(),
                },
            },
            database: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Parses a duration as people write it in a setting: `90`, `90s`, `15m`, `2h`, `7d` (and
/// `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| "expected a duration such as 90s, 15m, 2h or 7d".to_owned())?;
    let seconds = match unit {
        "" | "s" => Some(amount),
        "m" => amount.checked_mul(60),
        "h" => amount.checked_mul(3600),
        "d" => amount.checked_mul(86_400),
        "ms" => return Ok(Duration::from_millis(amount)),
        _ => None,
    };
    match seconds {
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err("expected a positive duration such as 90s, 15m, 2h or 7d".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_human_writes_them() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "0s", "fast", "10w", "-5s", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        realtime: DbArgs<Realtime>,
        #[command(flatten)]
        warehouse: DbArgs<Warehouse>,
        /// A setting with a custom parser, as the binaries have.
        #[arg(long, env = "DEMO_EVENTS_PER_SECOND", default_value = "50", value_parser = positive)]
        rate: u32,
    }

    fn positive(text: &str) -> Result<u32, String> {
        match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("expected a positive whole number".to_owned()),
        }
    }

    #[test]
    fn a_secret_can_come_from_a_file_named_by_its_key_file() -> Result<(), ConfigError> {
        let dir = std::env::temp_dir().join(format!("gm-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError::DotEnv(e.to_string()))?;
        let file = dir.join("realtime-password");
        std::fs::write(&file, "from-a-file\n").map_err(|e| ConfigError::DotEnv(e.to_string()))?;
        let env = |pairs: Vec<(&'static str, OsString)>| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
            }
        };
        let with_file = env(vec![
            ("POSTGRES_REALTIME_PASSWORD_FILE", file.clone().into()),
            // Only secrets are read from files.
            ("POSTGRES_REALTIME_HOST_FILE", file.clone().into()),
        ]);
        assert_eq!(
            secrets_from_files::<Demo>(with_file)?,
            vec![(
                "POSTGRES_REALTIME_PASSWORD".to_owned(),
                "from-a-file".to_owned()
            )]
        );
        let both = env(vec![
            ("POSTGRES_REALTIME_PASSWORD_FILE", file.clone().into()),
            ("POSTGRES_REALTIME_PASSWORD", "inline".into()),
        ]);
        match secrets_from_files::<Demo>(both) {
            Err(ConfigError::Invalid { key, allowed, .. }) => {
                assert_eq!(key, "POSTGRES_REALTIME_PASSWORD_FILE");
                assert!(
                    allowed.contains("POSTGRES_REALTIME_PASSWORD is set too"),
                    "{allowed}"
                );
            }
            other => panic!("both set must be refused, got {other:?}"),
        }
        let missing = env(vec![(
            "POSTGRES_WAREHOUSE_PASSWORD_FILE",
            dir.join("nothing-here").into(),
        )]);
        match secrets_from_files::<Demo>(missing) {
            Err(ConfigError::Invalid { key, allowed, .. }) => {
                assert_eq!(key, "POSTGRES_WAREHOUSE_PASSWORD_FILE");
                assert!(allowed.starts_with("cannot read the file"), "{allowed}");
            }
            other => panic!("a missing file must be refused, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn invalid(args: &[&str]) -> (String, String, String) {
        match parse_from::<Demo, _, _>(args.iter().copied()) {
            Err(ConfigError::Invalid {
                key,
                value,
                allowed,
            }) => (key, value, allowed),
            other => panic!("expected an invalid-value error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() -> Result<(), ConfigError> {
        let demo: Demo = parse_from(["demo"])?;
        assert_eq!(demo.rate, 50);
        let (rt, wh) = (&demo.realtime.settings, &demo.warehouse.settings);
        assert_eq!((rt.host.as_str(), rt.port), ("localhost", 5433));
        assert_eq!((wh.host.as_str(), wh.port), ("localhost", 5432));
        assert_eq!(rt.dbname, "globalmart_realtime");
        assert_eq!(wh.dbname, "globalmart_warehouse");
        assert_eq!(rt.password.expose(), "realtime_password");
        assert_eq!(wh.password.expose(), "warehouse_password");
        assert_eq!(rt.user, "globalmart_user");
        Ok(())
    }

    #[test]
    fn flags_override_defaults() -> Result<(), ConfigError> {
        let demo: Demo = parse_from([
            "demo",
            "--realtime-port",
            "6543",
            "--warehouse-db",
            "other",
            "--kafka-bootstrap-servers",
            "broker:9093",
        ])?;
        assert_eq!(demo.realtime.settings.port, 6543);
        assert_eq!(demo.warehouse.settings.dbname, "other");
        assert_eq!(demo.kafka.bootstrap_servers, "broker:9093");
        Ok(())
    }

    #[test]
    fn a_bad_value_names_the_environment_key_and_what_is_allowed() {
        let (key, value, allowed) = invalid(&["demo", "--realtime-port", "ninety"]);
        assert_eq!(key, "POSTGRES_REALTIME_PORT");
        assert_eq!(value, "ninety");
        assert!(allowed.contains("invalid digit"), "{allowed}");

        let (key, value, allowed) = invalid(&["demo", "--warehouse-port", "0"]);
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("POSTGRES_WAREHOUSE_PORT", "0")
        );
        assert!(allowed.contains("1..=65535"), "{allowed}");

        let (key, value, allowed) = invalid(&["demo", "--rate=fast"]);
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("DEMO_EVENTS_PER_SECOND", "fast")
        );
        assert_eq!(allowed, "expected a positive whole number");
    }

    #[test]
    fn the_error_message_reads_as_one_line_for_a_human() {
        let err = parse_from::<Demo, _, _>(["demo", "--rate=0"])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid DEMO_EVENTS_PER_SECOND \"0\": expected a positive whole number")
        );
    }

    #[test]
    fn help_lists_every_key_and_hides_passwords() {
        let help = Demo::command().render_long_help().to_string();
        for db in ["REALTIME", "WAREHOUSE"] {
            for field in ["HOST", "PORT", "USER", "PASSWORD", "DB"] {
                let key = format!("POSTGRES_{db}_{field}");
                assert!(help.contains(&key), "--help lacks {key}:\n{help}");
            }
        }
        assert!(help.contains("KAFKA_BOOTSTRAP_SERVERS"));
        assert!(!help.contains("realtime_password"), "{help}");
        assert!(!help.contains("warehouse_password"), "{help}");
    }

    #[test]
    fn secrets_never_print() -> Result<(), ConfigError> {
        let demo: Demo = parse_from(["demo", "--realtime-password", "hunter2"])?;
        let shown = format!("{demo:?} {}", demo.realtime.settings);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(demo.realtime.settings.password.expose(), "hunter2");
        Ok(())
    }
}
