//! Migrations on the real local PostgreSQL servers: every table of the realtime and
//! warehouse schemas (docs/ARCHITECTURE.md, "Where things are") exists, and each migration runs
//! once per database, whether the binaries' runner or the scripts' psql
//! (`scripts/postgres/migrate.sh`) applies it first.

use std::ops::RangeInclusive;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use globalmart_core::db::{self, Db, PgSettings};
use globalmart_testkit::{connect, TestStack};
use tokio_postgres::error::SqlState;

const REALTIME_TABLES: &[&str] = &[
    "transactions",
    "product_view_events",
    "cart_events",
    "products",
    "product_history",
    "users",
    "user_history",
    "product_stock",
    "dead_letter_events",
    "stream_offsets",
    "sales_per_minute",
    "sales_by_country",
    "cart_metrics",
    "abandoned_carts",
    "trending_products",
    "category_performance",
    "high_value_anomalies",
    "high_quantity_anomalies",
    "suspicious_patterns",
    "high_demand_alerts",
    "restock_alerts",
    "alerts",
];

const WAREHOUSE_TABLES: &[&str] = &[
    "dim_date",
    "dim_geography",
    "dim_customers",
    "dim_products",
    "fact_sales",
    "fact_product_views",
    "fact_cart_events",
    "product_performance",
    "rfm_analysis",
    "customer_segments",
    "customer_segments_history",
    "sales_trends",
    "etl_watermarks",
    "batch_runs",
    "batch_run_steps",
];

/// Everything a migration could change: columns, constraints, indexes and grants, plus the
/// reference rows of the warehouse, as one sorted text.
async fn snapshot(settings: &PgSettings, db: Db) -> Result<String> {
    let client = connect(settings).await?;
    let schema = client
        .query(
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
                    || is_nullable || ' ' || coalesce(column_default, '')
               FROM information_schema.columns WHERE table_schema = 'public'
             UNION ALL
             SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             UNION ALL
             SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
             UNION ALL
             SELECT 'grant ' || table_name || ' ' || grantee || ' ' || privilege_type
               FROM information_schema.role_table_grants WHERE table_schema = 'public'
             ORDER BY 1",
            &[],
        )
        .await?;
    let mut lines: Vec<String> = schema.iter().map(|r| r.get(0)).collect();
    if db == Db::Warehouse {
        let geography = client
            .query(
                "SELECT 'geography ' || geography_id || ' ' || country FROM dim_geography ORDER BY 1",
                &[],
            )
            .await?;
        lines.extend(geography.iter().map(|r| r.get::<_, String>(0)));
    }
    Ok(lines.join("\n"))
}

/// The tables and views of `public`: what a query can read by name (the realtime product
/// activity is views over the raw events).
async fn tables(settings: &PgSettings) -> Result<Vec<String>> {
    let client = connect(settings).await?;
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The version of migration file `path` (`V<n>__<name>.sql`).
fn version(path: &std::path::Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
}

/// `command` given psql's options and environment to connect to `settings`' database.
fn connecting<'a>(command: &'a mut Command, settings: &PgSettings) -> &'a mut Command {
    command
        .args(["-h", &settings.host, "-p", &settings.port.to_string()])
        .args(["-U", &settings.user, "-d", &settings.dbname])
        .env("PGPASSWORD", settings.password.expose())
        .env("PGOPTIONS", "-c client_min_messages=warning")
}

/// Runs the migration files of `sql/<dir>` whose versions are in `versions` with psql, in
/// order, as a person would by hand.
fn psql_apply(settings: &PgSettings, dir: &str, versions: RangeInclusive<u32>) -> Result<()> {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sql/");
    let mut files: Vec<_> = std::fs::read_dir(format!("{folder}{dir}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .filter(|path| version(path).is_some_and(|v| versions.contains(&v)))
        .collect();
    files.sort_by_key(|path| version(path));
    for file in files {
        let output = connecting(
            Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]),
            settings,
        )
        .arg("-f")
        .arg(&file)
        .output()
        .context("running psql (scripts/dev-up.sh installs it)")?;
        ensure!(
            output.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_table_of_the_spec_exists() -> Result<()> {
    let stack = TestStack::new().await?;
    let realtime = tables(&stack.realtime).await?;
    for table in REALTIME_TABLES {
        assert!(
            realtime.iter().any(|t| t == table),
            "realtime lacks {table}: {realtime:?}"
        );
    }
    let warehouse = tables(&stack.warehouse).await?;
    for table in WAREHOUSE_TABLES {
        assert!(
            warehouse.iter().any(|t| t == table),
            "warehouse lacks {table}: {warehouse:?}"
        );
    }
    Ok(())
}

/// Runs `scripts/postgres/migrate.sh` for `sql/<dir>` on `settings`' database, as
/// `scripts/dev-up.sh` and Docker's first start do; returns what it printed.
fn migrate_sh(settings: &PgSettings, dir: &str) -> Result<String> {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut command = Command::new(format!("{repo}/scripts/postgres/migrate.sh"));
    let output = connecting(command.arg(format!("{repo}/sql/{dir}")), settings)
        .output()
        .context("running scripts/postgres/migrate.sh")?;
    ensure!(
        output.status.success(),
        "migrate.sh {dir} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The stack's two databases, each with its kind and its migration folder under `sql/`.
fn databases(stack: &TestStack) -> [(&PgSettings, Db, &'static str); 2] {
    [
        (&stack.realtime, Db::Realtime, "realtime"),
        (&stack.warehouse, Db::Warehouse, "warehouse"),
    ]
}

#[tokio::test]
async fn each_migration_runs_once_whether_the_runner_or_psql_applies_it_first() -> Result<()> {
    let stack = TestStack::new().await?;
    for (settings, db, dir) in databases(&stack) {
        // TestStack's databases were migrated by the runner.
        let by_runner = snapshot(settings, db).await?;
        assert!(
            by_runner.lines().count() > 50,
            "suspiciously small schema:\n{by_runner}"
        );
        let mut client = connect(settings).await?;
        let applied = db::migrate(&mut client, db).await?;
        assert!(applied.is_empty(), "{dir}: second run applied {applied:?}");
        let printed = migrate_sh(settings, dir)?;
        assert_eq!(
            printed, "",
            "{dir}: psql after the runner applied something"
        );
        assert_eq!(
            snapshot(settings, db).await?,
            by_runner,
            "{dir}: schema changed"
        );

        // An empty database migrated by psql first: the same schema, and the runner adopts
        // psql's history instead of applying anything again.
        client
            .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .await?;
        let printed = migrate_sh(settings, dir)?;
        assert_eq!(
            printed.lines().count(),
            usize::try_from(db::needed_version(db))?,
            "{dir}: psql applied {printed}"
        );
        assert_eq!(
            migrate_sh(settings, dir)?,
            "",
            "{dir}: psql ran a file twice"
        );
        assert_eq!(
            snapshot(settings, db).await?,
            by_runner,
            "{dir}: psql's schema"
        );
        let applied = db::migrate(&mut client, db).await?;
        assert!(
            applied.is_empty(),
            "{dir}: runner after psql applied {applied:?}"
        );
        let unadopted: i64 = client
            .query_one(
                "SELECT count(*) FROM refinery_schema_history WHERE checksum = '0'",
                &[],
            )
            .await?
            .get(0);
        assert_eq!(unadopted, 0, "{dir}: psql's history rows keep the marker");
    }
    Ok(())
}

/// migrate.sh holds the lock the binaries migrate under: while a binary migrates (the lock held
/// here), it applies nothing and waits; then it applies every file once.
#[tokio::test]
async fn migrate_sh_waits_for_a_binary_migrating_the_same_database() -> Result<()> {
    let stack = TestStack::new().await?;
    for (settings, db, dir) in databases(&stack) {
        let client = connect(settings).await?;
        client
            .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&db.migration_lock()])
            .await?;
        let (tx, rx) = std::sync::mpsc::channel();
        let settings_ = settings.clone();
        std::thread::spawn(move || {
            let _ = tx.send(migrate_sh(&settings_, dir));
        });
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert!(
            rx.try_recv().is_err(),
            "{dir}: migrate.sh did not wait for the lock"
        );
        assert!(
            tables(settings).await?.is_empty(),
            "{dir}: applied while locked"
        );
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&db.migration_lock()])
            .await?;
        let printed = rx.recv_timeout(std::time::Duration::from_secs(120))??;
        assert_eq!(
            printed.lines().count(),
            usize::try_from(db::needed_version(db))?,
            "{dir}: psql applied {printed}"
        );
    }
    Ok(())
}

/// V8 turns a warehouse's facts into day partitions (sql/warehouse/V8__facts_by_day.sql): the
/// rows and their ids stay, new ids follow them, and a fact loaded again meets its row.
#[tokio::test]
async fn v8_moves_the_facts_into_day_partitions_keeping_rows_and_ids() -> Result<()> {
    let stack = TestStack::new().await?;
    let client = connect(&stack.warehouse).await?;
    // This test's database as it was before V8.
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await?;
    psql_apply(&stack.warehouse, "warehouse", 1..=7)?;
    client
        .batch_execute(
            "INSERT INTO fact_sales (event_id, transaction_id, customer_id, product_id_pk,
                 geography_id, date_id, quantity, unit_price, total_amount, payment_method,
                 transaction_timestamp)
             SELECT md5(i::text)::uuid, md5('t' || i)::uuid, i, i, 1, 20251207, 1, 10, 10,
                 'card', timestamptz '2025-12-07 23:00:00+00' + i * interval '30 minutes'
             FROM generate_series(1, 4) i;
             INSERT INTO fact_product_views (event_id, event_type, customer_id, geography_id,
                 date_id, session_id, event_timestamp)
             VALUES (md5('v')::uuid, 'search', 1, 1, 20251207, 's',
                 '2025-12-07 10:00:00+00');
             INSERT INTO fact_cart_events (event_id, event_type, customer_id, geography_id,
                 date_id, session_id, event_timestamp)
             VALUES (md5('c')::uuid, 'checkout', 1, 1, 20251209, 's',
                 '2025-12-09 10:00:00+00');",
        )
        .await?;
    let sales = "SELECT sale_id || ' ' || event_id || ' ' || transaction_timestamp FROM fact_sales
                 ORDER BY sale_id";
    let rows = |r: Vec<tokio_postgres::Row>| r.iter().map(|r| r.get(0)).collect::<Vec<String>>();
    let before = rows(client.query(sales, &[]).await?);
    assert_eq!(before.len(), 4);

    psql_apply(&stack.warehouse, "warehouse", 8..=8)?;

    assert_eq!(rows(client.query(sales, &[]).await?), before);
    let partitions = rows(
        client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE c.relkind = 'r' ORDER BY 1",
                &[],
            )
            .await?,
    );
    assert_eq!(
        partitions,
        ["fact_cart_events", "fact_product_views", "fact_sales"]
            .iter()
            .flat_map(|t| ["20251207", "20251208", "20251209"].map(|d| format!("{t}_{d}")))
            .collect::<Vec<_>>(),
        "each table has the days of every table's rows"
    );
    let again = client
        .execute(
            "INSERT INTO fact_sales (event_id, transaction_id, customer_id, product_id_pk,
                 geography_id, date_id, quantity, unit_price, total_amount, payment_method,
                 transaction_timestamp)
             SELECT event_id, transaction_id, customer_id, product_id_pk, geography_id, date_id,
                 quantity, unit_price, total_amount, payment_method, transaction_timestamp
             FROM fact_sales
             ON CONFLICT (event_id, transaction_timestamp) DO NOTHING",
            &[],
        )
        .await?;
    assert_eq!(again, 0, "a fact loaded again was inserted");
    let next: i64 = client
        .query_one(
            "INSERT INTO fact_sales (event_id, transaction_id, customer_id, product_id_pk,
                 geography_id, date_id, quantity, unit_price, total_amount, payment_method,
                 transaction_timestamp)
             VALUES (gen_random_uuid(), gen_random_uuid(), 1, 1, 1, 20251208, 1, 10, 10, 'card',
                 '2025-12-08 12:00:00+00')
             RETURNING sale_id",
            &[],
        )
        .await?
        .get(0);
    // The conflicting inserts above drew ids too: ids have gaps, never repeats.
    assert!(
        next > 4,
        "new id {next} does not follow the moved ones (1 to 4)"
    );
    Ok(())
}

#[tokio::test]
async fn the_reader_role_can_read_but_not_write() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut reader = stack.warehouse.clone();
    reader.user = "globalmart_reader".into();
    reader.password = globalmart_core::config::Secret::new("reader_password");
    let client = connect(&reader).await?;
    let countries: i64 = client
        .query_one("SELECT count(*) FROM dim_geography WHERE is_current", &[])
        .await?
        .get(0);
    assert_eq!(countries, 5);
    let write = client
        .execute("DELETE FROM dim_geography WHERE country = 'USA'", &[])
        .await;
    let Err(e) = write else {
        panic!("globalmart_reader must not be able to delete");
    };
    let reason = globalmart_core::db::describe(&e);
    assert!(reason.contains("permission denied"), "{reason}");
    drop(client);
    // Grafana's sessions, which do not run our SESSION, go without JIT by the role's setting.
    for settings in [&stack.realtime, &stack.warehouse] {
        let settings: Vec<String> = connect(settings)
            .await?
            .query_one(
                "SELECT coalesce(setconfig, '{}') FROM pg_db_role_setting
                  WHERE setrole = 'globalmart_reader'::regrole AND setdatabase = 0",
                &[],
            )
            .await?
            .get(0);
        assert!(settings.contains(&"jit=off".to_owned()), "{settings:?}");
    }
    Ok(())
}

/// `settings` as login role `user` (scripts/postgres/runtime-logins.sql's development
/// passwords, as scripts/dev-up.sh creates them).
fn as_role(settings: &PgSettings, user: &str) -> PgSettings {
    let password = match user {
        "globalmart_stream" => "stream_password",
        "globalmart_batch" => "batch_password",
        _ => "reader_password",
    };
    PgSettings {
        user: user.into(),
        password: globalmart_core::config::Secret::new(password),
        ..settings.clone()
    }
}

/// What a role may do to a database, asked without changing anything: PostgreSQL checks the
/// privilege of a statement whose WHERE matches no row all the same.
async fn allowed(settings: &PgSettings, statement: &str) -> Result<bool> {
    let client = connect(settings).await?;
    let outcome = client.batch_execute(statement).await;
    drop(client);
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(e) => anyhow::bail!("{statement}: {}", globalmart_core::db::describe(&e)),
    }
}

#[tokio::test]
async fn each_runtime_role_can_do_what_its_binary_needs_and_nothing_more() -> Result<()> {
    let stack = TestStack::new().await?;
    let (realtime, warehouse) = (&stack.realtime, &stack.warehouse);
    // (role, database, statement, allowed?)
    let cases = [
        // The stream: its realtime tables, read and written; not the schema, not the warehouse.
        ("globalmart_stream", realtime, "SELECT count(*) FROM transactions", true),
        ("globalmart_stream", realtime, "INSERT INTO dead_letter_events (topic, payload, reason) SELECT 't', 'p', 'r' WHERE false", true),
        ("globalmart_stream", realtime, "UPDATE stream_offsets SET next_offset = 0 WHERE false", true),
        ("globalmart_stream", realtime, "DELETE FROM sales_per_minute WHERE false", true),
        ("globalmart_stream", realtime, "CREATE TABLE intruder (id int)", false),
        ("globalmart_stream", realtime, "DROP TABLE transactions", false),
        ("globalmart_stream", realtime, "TRUNCATE transactions", false),
        ("globalmart_stream", warehouse, "SELECT count(*) FROM fact_sales", false),
        ("globalmart_stream", warehouse, "SELECT count(*) FROM dim_customers", false),
        // The batch: reads realtime, reads and writes the warehouse, changes no schema.
        ("globalmart_batch", realtime, "SELECT count(*) FROM transactions", true),
        ("globalmart_batch", realtime, "DELETE FROM transactions WHERE false", false),
        ("globalmart_batch", realtime, "UPDATE stream_offsets SET next_offset = 0 WHERE false", false),
        ("globalmart_batch", warehouse, "DELETE FROM fact_sales WHERE false", true),
        ("globalmart_batch", warehouse, "UPDATE dim_customers SET customer_segment = NULL WHERE false", true),
        ("globalmart_batch", warehouse, "CREATE TABLE intruder (id int)", false),
        ("globalmart_batch", warehouse, "DROP TABLE fact_sales", false),
        // Grafana's reader: reads both, writes neither.
        ("globalmart_reader", realtime, "SELECT count(*) FROM transactions", true),
        ("globalmart_reader", realtime, "DELETE FROM transactions WHERE false", false),
        ("globalmart_reader", warehouse, "SELECT count(*) FROM fact_sales", true),
        ("globalmart_reader", warehouse, "UPDATE fact_sales SET quantity = 0 WHERE false", false),
        ("globalmart_reader", warehouse, "CREATE TABLE intruder (id int)", false),
    ];
    for (role, db, statement, expected) in cases {
        let got = allowed(&as_role(db, role), statement).await?;
        assert_eq!(got, expected, "{role} on {}: {statement}", db.dbname);
    }
    Ok(())
}

/// The pool's connections and the one-off ones run without JIT compilation
/// (docs/ARCHITECTURE.md, "Connections"), though the local stack's servers keep PostgreSQL's
/// default (on).
#[tokio::test]
async fn every_connection_of_ours_runs_without_jit() -> Result<()> {
    let stack = TestStack::new().await?;
    let pool = stack.warehouse.pool("globalmart-test", 1)?;
    let pooled = db::get(&pool, Db::Warehouse).await?;
    let jit: String = pooled.query_one("SHOW jit", &[]).await?.get(0);
    assert_eq!(jit, "off");
    drop(pooled);
    let one_off = stack.warehouse.connect("globalmart-test").await?;
    let jit: String = one_off.query_one("SHOW jit", &[]).await?.get(0);
    assert_eq!(jit, "off");
    Ok(())
}
