//! PostgreSQL: the one pool helper and the migration runner. Schemas are the numbered plain-SQL
//! files under `sql/realtime` and `sql/warehouse`, embedded at build time and applied by
//! refinery, which records what it applied and refuses a landed migration that was edited. The
//! scripts apply them with psql into the same history (`scripts/postgres/migrate.sh`), so each
//! file runs once per database whoever applies it first.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tracing::{info, warn};

use crate::config::Secret;
use crate::pg_tls::{PgTls, TlsError};

mod embedded {
    pub mod realtime {
        refinery::embed_migrations!("../../sql/realtime");
    }
    pub mod warehouse {
        refinery::embed_migrations!("../../sql/warehouse");
    }
}

/// The platform's two databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// `globalmart_realtime`: raw events, catalogue, realtime metrics (port 5433).
    Realtime,
    /// `globalmart_warehouse`: star schema and analytics (port 5432).
    Warehouse,
}

impl Db {
    /// Lower-case name, used in flags (`--realtime-host`) and logs.
    pub fn label(self) -> &'static str {
        match self {
            Db::Realtime => "realtime",
            Db::Warehouse => "warehouse",
        }
    }

    /// Prefix of the environment keys (`POSTGRES_REALTIME`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Db::Realtime => "POSTGRES_REALTIME",
            Db::Warehouse => "POSTGRES_WAREHOUSE",
        }
    }

    /// The documented development port.
    pub fn default_port(self) -> u16 {
        match self {
            Db::Realtime => 5433,
            Db::Warehouse => 5432,
        }
    }

    /// The documented development password.
    pub fn default_password(self) -> &'static str {
        match self {
            Db::Realtime => "realtime_password",
            Db::Warehouse => "warehouse_password",
        }
    }

    /// The documented database name.
    pub fn default_dbname(self) -> &'static str {
        match self {
            Db::Realtime => "globalmart_realtime",
            Db::Warehouse => "globalmart_warehouse",
        }
    }

    fn runner(self) -> refinery::Runner {
        match self {
            Db::Realtime => embedded::realtime::migrations::runner(),
            Db::Warehouse => embedded::warehouse::migrations::runner(),
        }
    }

    /// Key of the advisory lock that serialises migrations of this database, so instances
    /// starting together do not race to create the same tables (scripts/postgres/migrate.sh
    /// takes both databases' keys).
    pub fn migration_lock(self) -> i64 {
        match self {
            Db::Realtime => 0x676d_7274,  // "gmrt"
            Db::Warehouse => 0x676d_7768, // "gmwh"
        }
    }
}

/// Key of the advisory lock between the realtime writers and the batch ETL. `ingest_seq`
/// values are handed out at insert time but their rows commit in any order, so "the highest
/// ingest_seq visible now" is not a safe watermark: a lower one may still be in flight. Each
/// writer transaction holds this lock shared; the ETL takes it exclusively for an instant, and
/// while it holds it no row is in flight, so every ingest_seq up to the highest visible one is
/// settled.
pub const INGEST_LOCK: i64 = 0x676d_6973; // "gmis"

/// The first day the realtime raw tables keep (raw retention dropped the days before it; no
/// row, as in a table emptied by a restore: nothing was dropped), as a date. Read by the
/// stream's saves under [`INGEST_LOCK`] and by the batch's `validate`.
pub const RAW_HORIZON: &str =
    "SELECT coalesce((SELECT horizon FROM raw_retention), DATE '1970-01-01')";

/// Where and as whom to connect, and how safely. `Display` and `Debug` never show the
/// password.
#[derive(Debug, Clone, PartialEq)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub dbname: String,
    pub tls: PgTls,
}

impl fmt::Display for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

/// A database operation that failed, with where it was going.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot set up TLS for {target}: {source}")]
    Tls { target: String, source: TlsError },
    #[error("cannot build a connection pool for {target}: {source}")]
    Pool {
        target: String,
        source: deadpool_postgres::BuildError,
    },
    #[error("{target} is not reachable after {waited:?}: {last_error}")]
    Unreachable {
        target: String,
        waited: Duration,
        last_error: String,
    },
    /// The server refused for a reason that waiting will not change: a wrong password, an
    /// unknown role or database. Told apart from an outage so it stops the program at once.
    #[error("{target} refused the connection: {reason}; check {keys}")]
    Refused {
        target: String,
        reason: String,
        keys: String,
    },
    #[error("cannot get a connection to {target}: {source}")]
    Connection {
        target: String,
        source: deadpool_postgres::PoolError,
    },
    /// A runtime role (one that cannot change the schema) found the schema older than this
    /// binary: the owner must migrate first.
    #[error(
        "the {db} database's schema is at version {applied}, this binary needs {needed}; run \
         `{binary} migrate` as the owner role (the one that owns the tables: \
         {prefix}_USER), then start it again"
    )]
    SchemaBehind {
        db: &'static str,
        applied: i32,
        needed: i32,
        binary: String,
        prefix: &'static str,
    },
    #[error("migrating {db} failed: {source}")]
    Migration {
        db: &'static str,
        source: refinery::Error,
    },
    #[error("{}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

/// tokio-postgres shows a server error as just "db error"; this adds what the server said.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// What every connection of ours runs with (docs/ARCHITECTURE.md, "Connections"): no JIT
/// compilation. Our statements are many and short, but over day partitions and growing tables
/// their cost estimates pass `jit_above_cost` and PostgreSQL compiles them before running them:
/// after a month of the course's scenario the abandoned-cart sweep, every 30 seconds, spent
/// 9.0 s compiling 689 functions and 1.5 s running (2026-12-02).
pub const SESSION: &str = "SET jit = off";

impl PgSettings {
    /// The same server and role, another database (used to create and drop test databases).
    pub fn with_dbname(&self, dbname: &str) -> PgSettings {
        PgSettings {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// The tokio-postgres configuration; `application_name` shows in `pg_stat_activity`.
    pub fn pg_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(self.password.expose())
            .dbname(&self.dbname)
            .application_name(application_name)
            .ssl_mode(self.tls.negotiation())
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// A client on this database, its connection driven by a spawned task: for the scripts'
    /// and tests' one-off work; binaries use [`PgSettings::pool`].
    pub async fn connect(&self, application_name: &str) -> Result<tokio_postgres::Client, DbError> {
        let tls = self.tls_connector()?;
        let (client, connection) = self.pg_config(application_name).connect(tls).await?;
        tokio::spawn(connection);
        client.batch_execute(SESSION).await?;
        Ok(client)
    }

    fn tls_connector(&self) -> Result<postgres_openssl::MakeTlsConnector, DbError> {
        self.tls.connector().map_err(|source| DbError::Tls {
            target: self.to_string(),
            source,
        })
    }

    /// A pool of up to `max_size` connections. Connections open lazily; use
    /// [`wait_until_ready`] to find out whether the server answers.
    pub fn pool(&self, application_name: &str, max_size: usize) -> Result<Pool, DbError> {
        let manager = Manager::from_config(
            self.pg_config(application_name),
            self.tls_connector()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(SESSION)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|source| DbError::Pool {
                target: self.to_string(),
                source,
            })
    }
}

/// Tries to get a connection to database `db` until `max_wait` has passed, doubling the pause
/// between tries (100 ms up to 5 s) and logging each failure, so a database that is still
/// starting (or restarting) is waited for rather than treated as fatal; a refusal (a wrong
/// password, an unknown role or database) is returned at once, naming the settings to check.
pub async fn wait_until_ready(
    pool: &Pool,
    target: &PgSettings,
    db: Db,
    max_wait: Duration,
) -> Result<deadpool_postgres::Object, DbError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let error = match pool.get().await {
            Ok(client) => return Ok(client),
            Err(error) => error,
        };
        if let Some(refused) = refused(&error, target.to_string(), db) {
            return Err(refused);
        }
        if started.elapsed() + pause > max_wait {
            return Err(DbError::Unreachable {
                target: target.to_string(),
                waited: started.elapsed(),
                last_error: error.to_string(),
            });
        }
        warn!(%target, error = %error, retry_in = ?pause, "database not reachable, retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// A connection from `pool` to database `db` (the one it holds, or a new one), for work that
/// retries outages: a refusal comes back as [`DbError::Refused`], which retrying will not mend.
pub async fn get(pool: &Pool, db: Db) -> Result<deadpool_postgres::Object, DbError> {
    let target = format!("the {} database", db.label());
    pool.get()
        .await
        .map_err(|error| match refused(&error, target.clone(), db) {
            Some(refused) => refused,
            None => DbError::Connection {
                target,
                source: error,
            },
        })
}

/// The refusal a failed connection to `db` was, if it was one (not an outage).
fn refused(error: &deadpool_postgres::PoolError, target: String, db: Db) -> Option<DbError> {
    let deadpool_postgres::PoolError::Backend(e) = error else {
        return None;
    };
    refusal(e, db).map(|keys| DbError::Refused {
        target,
        reason: describe(e),
        keys,
    })
}

/// The settings to check when the server refused a connection to `db` for a reason waiting
/// will not change (a wrong password, an unknown role or database, a certificate that does not
/// verify, TLS one side will not speak); None for anything else (an outage is waited for).
fn refusal(error: &tokio_postgres::Error, db: Db) -> Option<String> {
    let settings: &[&str] = match error.as_db_error().map(|e| e.code()) {
        Some(code) if *code == SqlState::INVALID_PASSWORD => &["USER", "PASSWORD"],
        // Also what pg_hba.conf's hostssl-only rules answer a plaintext connection.
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            &["USER", "HOST", "SSLMODE"]
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => &["DB"],
        Some(_) => return None,
        // tokio-postgres tells these only in its messages (a handshake cut short by a server
        // restarting is an outage, and waited for).
        None => {
            let said = describe(error);
            if said.contains("certificate verify failed") {
                &["SSLROOTCERT", "HOST", "SSLMODE"]
            } else if said.contains("server does not support TLS") {
                &["SSLMODE"]
            } else {
                return None;
            }
        }
    };
    let keys: Vec<String> = (settings.iter())
        .map(|s| format!("{}_{s}", db.env_prefix()))
        .collect();
    Some(match keys.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    })
}

/// Applies the migrations of `db` that are not applied yet and returns their names.
/// Idempotent; safe to run from several processes at once.
pub async fn migrate(client: &mut tokio_postgres::Client, db: Db) -> Result<Vec<String>, DbError> {
    let lock = db.migration_lock();
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await?;
    let outcome = migrate_locked(client, db).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await?;
    let report = outcome?;
    let applied: Vec<String> = report
        .applied_migrations()
        .iter()
        .map(ToString::to_string)
        .collect();
    if applied.is_empty() {
        info!(db = db.label(), "schema up to date");
    } else {
        info!(db = db.label(), migrations = ?applied, "applied migrations");
    }
    Ok(applied)
}

/// `migrate`'s work under its lock: psql's history adopted, then refinery's run.
async fn migrate_locked(
    client: &mut tokio_postgres::Client,
    db: Db,
) -> Result<refinery::Report, DbError> {
    let runner = db.runner();
    let adopted = adopt_psql_history(client, &runner).await?;
    if adopted > 0 {
        info!(
            db = db.label(),
            adopted, "adopted the migrations psql applied"
        );
    }
    (runner.run_async(client).await).map_err(|source| DbError::Migration {
        db: db.label(),
        source,
    })
}

/// The checksum `scripts/postgres/migrate.sh` records for a migration it applied: psql cannot
/// compute refinery's.
const PSQL_CHECKSUM: &str = "0";

/// Gives the migrations psql applied their files' checksums, so refinery takes them as its own
/// (and refuses an edited file from then on). Returns how many it adopted.
async fn adopt_psql_history(
    client: &tokio_postgres::Client,
    runner: &refinery::Runner,
) -> Result<u64, DbError> {
    if !history_exists(client).await? {
        return Ok(0);
    }
    let (versions, checksums): (Vec<i32>, Vec<String>) = (runner.get_migrations().iter())
        .map(|m| (m.version(), m.checksum().to_string()))
        .unzip();
    Ok(client
        .execute(
            "UPDATE refinery_schema_history h SET checksum = f.checksum
               FROM unnest($1::int4[], $2::text[]) f (version, checksum)
              WHERE h.version = f.version AND h.checksum = $3",
            &[&versions, &checksums, &PSQL_CHECKSUM],
        )
        .await?)
}

async fn history_exists(client: &tokio_postgres::Client) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
}

/// The newest migration this binary holds for `db`.
pub fn needed_version(db: Db) -> i32 {
    (db.runner().get_migrations().iter())
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database `client` is on (0: none).
pub async fn applied_version(client: &tokio_postgres::Client) -> Result<i32, DbError> {
    if !history_exists(client).await? {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether the role `client` is connected as may change the schema (create tables in
/// `public`): the owner role, which migrates; a runtime role only checks the version.
pub async fn may_migrate(client: &tokio_postgres::Client) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT has_schema_privilege('public', 'CREATE')", &[])
        .await?
        .get(0))
}

/// Migrates `db` when connected as its owner; as a runtime role, checks instead that the
/// schema is not behind this binary (`binary`, named in the error: it has a `migrate` command).
pub async fn migrate_or_check(
    client: &mut tokio_postgres::Client,
    db: Db,
    binary: &str,
) -> Result<(), DbError> {
    if may_migrate(client).await? {
        migrate(client, db).await?;
        return Ok(());
    }
    let (applied, needed) = (applied_version(client).await?, needed_version(db));
    if applied < needed {
        return Err(DbError::SchemaBehind {
            db: db.label(),
            applied,
            needed,
            binary: binary.to_owned(),
            prefix: db.env_prefix(),
        });
    }
    info!(
        db = db.label(),
        version = applied,
        "schema up to date (checked: this role does not migrate)"
    );
    Ok(())
}

/// A binary's `migrate` command: connects to `db` (waiting up to `max_wait`) and applies its
/// migrations, whatever the role; one that may not change the schema gets PostgreSQL's
/// "permission denied". Returns the migrations applied.
pub async fn apply_migrations(
    settings: &PgSettings,
    db: Db,
    application_name: &str,
    max_wait: Duration,
) -> Result<Vec<String>, DbError> {
    let pool = settings.pool(application_name, 1)?;
    let mut client = wait_until_ready(&pool, settings, db, max_wait).await?;
    migrate(&mut client, db).await
}

/// The usual start of a binary (`application_name`, which has a `migrate` command): a pool for
/// `settings`, the server waited for (up to `max_wait`), and the migrations of `db` applied
/// (as the owner role) or checked (as a runtime role).
pub async fn connect_and_migrate(
    settings: &PgSettings,
    db: Db,
    application_name: &str,
    max_size: usize,
    max_wait: Duration,
) -> Result<Pool, DbError> {
    let pool = settings.pool(application_name, max_size)?;
    let mut client = wait_until_ready(&pool, settings, db, max_wait).await?;
    migrate_or_check(&mut client, db, application_name).await?;
    Ok(pool)
}
