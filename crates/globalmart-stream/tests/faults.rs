//! The stream through faults, on the real broker and PostgreSQL: the stream SIGKILLed three
//! times during a 200,000-event generator flow with 10,000 malformed messages mixed in, the
//! database connection cut mid-flow, a private PostgreSQL and a private broker restarted
//! mid-flow, a database restored empty and one restored from an older backup while Kafka's
//! committed offsets say everything was read. Each ends with the same full comparison: every
//! realtime table, field by field, equal to the reference model of the events produced
//! (`common/model.rs`). The fault tests print their reliability figures (run with `--nocapture`
//! to see them).

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::{
    assert_saved_as_modelled, counts, counts_in, delivered, events, expected_counts, lines,
    produce_all, produce_events, produce_to, producer, rows, run, send, stream, texts,
    wait_for_rows,
};
use globalmart_core::config::Secret;
use globalmart_core::db::{Db, PgSettings};
use globalmart_core::event::Event;
use globalmart_core::kafka::Refusals;
use globalmart_core::topics::Topic;
use globalmart_generator::config::Config as GeneratorConfig;
use globalmart_generator::generate;
use globalmart_generator::mix::Mix;
use globalmart_generator::producer::Output;
use globalmart_generator::timeline::Period;
use globalmart_testkit::{connect, database_env, KafkaBroker, PostgresServer, Proxy, TestStack};
use tokio_util::sync::CancellationToken;

/// Events of the generator flow the stream is killed in.
const FLOW: u64 = 200_000;

/// Malformed messages mixed into that flow: (topic, payload, the dead letter's reason), sent
/// round-robin.
const MALFORMED: [(Topic, &[u8], &str); 5] = [
    (
        Topic::Transactions,
        br#"{"transaction_id": "#,
        "malformed JSON",
    ),
    (
        Topic::Transactions,
        br#"{"transaction_id": 7, "user_id": []}"#,
        "invalid transaction",
    ),
    (
        Topic::CartEvents,
        br#"{"event_type": "wishlist"}"#,
        "invalid cart event",
    ),
    (Topic::ProductViews, b"\xff\xfe\xfd", "not valid UTF-8"),
    (
        Topic::ProductViews,
        br#"{"event_id": "unterminated"#,
        "malformed JSON",
    ),
];
const MALFORMED_COUNT: usize = 10_000;

#[tokio::test(flavor = "multi_thread")]
async fn three_kill_9s_in_a_generator_flow_with_malformed_messages_lose_and_double_nothing(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let client = stack.realtime_client().await?;
    let config: GeneratorConfig = globalmart_core::config::parse_from([
        "globalmart-generator",
        "--kafka-bootstrap-servers",
        &stack.bootstrap_servers,
        "--kafka-topic-prefix",
        &stack.topic_prefix(),
        "--seed",
        "11",
        "--users",
        "2000",
        "--products",
        "200",
        "--rate",
        "10000",
        "--count",
        &FLOW.to_string(),
        "--stats-interval",
        "1h",
        "--metrics-addr",
        "127.0.0.1:0",
    ])?;
    // The same seed replays the same events (timestamps aside): what the flow must become.
    let mut mix = Mix::new(
        config.mix_settings(),
        11,
        11,
        Period::day_of(chrono::Utc::now()),
    );
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    while mix.counts().events() < FLOW {
        records.push(mix.next(chrono::Utc::now()));
    }

    let started = Instant::now();
    let stop = CancellationToken::new();
    let output = Output::for_config(&config, Refusals::new(stop.clone()))?;
    let generator = tokio::spawn(async move { generate::run(&config, output, stop).await });
    let malformed = tokio::spawn(produce_malformed(
        stack.bootstrap_servers.clone(),
        stack.topic_prefix(),
    ));
    // Killed when a fifth, two fifths and three fifths of the views are saved.
    let views = expected_counts(&records)[1].1;
    let mut recoveries = Vec::new();
    for kill in 1..=3 {
        let before = committed(&client).await?;
        let mut victim = stream(&stack)
            .env_remove("STREAM_EXIT_WHEN_IDLE")
            .stderr(Stdio::null())
            .spawn()?;
        let respawned = Instant::now();
        if kill > 1 {
            recoveries.push(resumed(&client, before, respawned).await?);
        }
        while rows(&client, "product_view_events").await? < views * kill / 5 {
            ensure!(
                started.elapsed() < Duration::from_secs(240),
                "the flow stalled before kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SIGKILL of the process this test started, by its pid.
        victim.kill()?;
        victim.wait()?;
    }
    let delivery = generator.await??;
    malformed.await??;
    let before = committed(&client).await?;
    let last = tokio::spawn(run(stream(&stack)));
    recoveries.push(resumed(&client, before, Instant::now()).await?);
    last.await??;

    ensure!(
        delivery.failed == 0,
        "the generator lost {}",
        delivery.failed
    );
    assert_eq!(delivery.delivered as usize, records.len());
    let mut expected = expected_counts(&records);
    expected[5].1 = MALFORMED_COUNT as i64;
    let saved = counts_in(&client).await?;
    assert_eq!(saved, expected);
    // Not only as many rows: the very events, each once.
    for (query, ids) in [
        (
            "SELECT event_id::text FROM product_view_events",
            ids(&records, |r| match r {
                Event::ProductView(v) => Some(v.event_id),
                _ => None,
            }),
        ),
        (
            "SELECT event_id::text FROM cart_events",
            ids(&records, |r| match r {
                Event::Cart(c) => Some(c.event_id),
                _ => None,
            }),
        ),
        (
            "SELECT DISTINCT transaction_id::text FROM transactions",
            ids(&records, |r| match r {
                Event::Transaction(t) => Some(t.transaction_id),
                _ => None,
            }),
        ),
    ] {
        let stored: BTreeSet<String> = texts(&client, query).await?.into_iter().collect();
        assert!(stored == ids, "{query}: not the delivered events");
    }
    for (_, _, reason) in MALFORMED {
        let expected = MALFORMED.iter().filter(|(_, _, r)| *r == reason).count()
            * (MALFORMED_COUNT / MALFORMED.len());
        let letters: i64 = client
            .query_one(
                "SELECT count(*) FROM dead_letter_events WHERE strpos(reason, $1) > 0",
                &[&reason],
            )
            .await?
            .get(0);
        assert_eq!(letters as usize, expected, "dead letters for {reason:?}");
    }
    // Every field of every table as the events the broker holds say (the seed replays the
    // events but not the generator's clock).
    let events = delivered(&stack).await?;
    assert_eq!(events.len(), records.len());
    assert_saved_as_modelled(&client, &events).await?;

    eprintln!(
        "reliability: kill -9 x3 | events delivered {} (of which catalogue {}), lost 0 | \
         malformed mixed in {MALFORMED_COUNT} | rows saved {} (transactions as lines), \
         duplicates 0, dead letters {} | recovery after each kill {} | whole flow {:.1} s",
        delivery.delivered,
        records.len() as u64 - FLOW,
        event_rows(&saved),
        saved[5].1,
        seconds(&recoveries),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The ids `of` picks from the records, as PostgreSQL prints them.
fn ids(records: &[Event], of: fn(&Event) -> Option<uuid::Uuid>) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(of)
        .map(|id| id.to_string())
        .collect()
}

/// [`MALFORMED_COUNT`] malformed messages, in 20 bursts half a second apart: mixed into the
/// flow rather than ahead of it.
async fn produce_malformed(bootstrap: String, prefix: String) -> Result<()> {
    let producer = producer(&bootstrap)?;
    for burst in 0..20 {
        let per_burst = MALFORMED_COUNT / 20;
        let sends = (0..per_burst).map(|i| {
            let n = burst * per_burst + i;
            let (topic, payload, _) = MALFORMED[n % MALFORMED.len()];
            let topic = format!("{prefix}{}", topic.name());
            let producer = &producer;
            async move { send(producer, &topic, format!("BAD_{n}").as_bytes(), payload).await }
        });
        futures::future::try_join_all(sends).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Sum of the offsets the stream has committed with its rows: grows with every saved batch.
async fn committed(client: &tokio_postgres::Client) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT coalesce(sum(next_offset), 0)::bigint FROM stream_offsets",
            &[],
        )
        .await?
        .get(0))
}

/// How long after `since` the stream committed past `before`: the recovery time (at most
/// 120 s).
async fn resumed(client: &tokio_postgres::Client, before: i64, since: Instant) -> Result<Duration> {
    while committed(client).await? <= before {
        ensure!(
            since.elapsed() < Duration::from_secs(120),
            "the stream did not resume in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(since.elapsed())
}

/// Prints one fault's reliability figures (after its assertions: nothing lost, nothing
/// doubled); `saved` is [`counts_in`]'s.
fn report(fault: &str, sent: usize, saved: &[(String, i64)], recovery: Duration) {
    eprintln!(
        "reliability: {fault} | events sent {sent} | rows saved {} | duplicates 0 | dead letters \
         {} | recovery {}",
        event_rows(saved),
        saved[5].1,
        seconds(&[recovery])
    );
}

/// Transaction lines, views and cart events among [`counts_in`]'s rows.
fn event_rows(saved: &[(String, i64)]) -> i64 {
    saved[..3].iter().map(|(_, n)| n).sum()
}

fn seconds(durations: &[Duration]) -> String {
    let all: Vec<String> = durations
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    all.join(", ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_realtime_postgres_restarted_mid_flow_loses_nothing_and_doubles_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let user = stack.realtime.user.clone();
    let mut server = tokio::task::spawn_blocking(move || PostgresServer::start(&user)).await??;
    let db = server.database(&stack.realtime, Db::Realtime).await?;
    // The second half arrives only once the database is back: the restart is mid-flow
    // whatever the machine's pace.
    let records = events(20_000);
    let (first, second) = records.split_at(records.len() / 2);
    produce_all(&stack, first).await?;
    let mut command = stream(&stack);
    command
        .envs(database_env(Db::Realtime, &db))
        .env("STREAM_BATCH_SIZE", "500")
        // Longer than the second half's production on a loaded machine, which starts once the
        // database is back.
        .env("STREAM_EXIT_WHEN_IDLE", "15");
    let flow = tokio::spawn(run(command));

    let client = connect(&db).await?;
    wait_for_rows(&client, "product_view_events").await?;
    // Down the hard way for 2 s: every connection cut, no shutdown checkpoint.
    server = tokio::task::spawn_blocking(move || {
        server.restart(Duration::from_secs(2))?;
        anyhow::Ok(server)
    })
    .await??;
    let back = Instant::now();
    let client = connect(&db).await?;
    let before = committed(&client).await?;
    produce_all(&stack, second).await?;
    let recovery = resumed(&client, before, back).await?;
    let log = flow.await??;

    assert!(log.contains("retrying"), "no retry was logged: {log}");
    let saved = counts_in(&client).await?;
    assert_eq!(saved, expected_counts(&records));
    assert_saved_as_modelled(&client, &records).await?;
    report(
        "realtime PostgreSQL restarted (immediate stop, 2 s down)",
        records.len(),
        &saved,
        recovery,
    );
    drop(client);
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_going_away_mid_flow_loses_nothing_and_doubles_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let db = &stack.realtime;
    let proxy = Proxy::start(format!("{}:{}", db.host, db.port)).await?;
    let records = events(20_000);
    let (first, second) = records.split_at(records.len() / 2);
    produce_all(&stack, first).await?;
    let mut command = stream(&stack);
    command
        .env("POSTGRES_REALTIME_PORT", proxy.port().to_string())
        .env("STREAM_BATCH_SIZE", "500")
        // The second half is produced while the database is away: the stream is retrying then,
        // not idle; this covers the production's pace on a loaded machine.
        .env("STREAM_EXIT_WHEN_IDLE", "15");
    let flow = tokio::spawn(run(command));

    let client = stack.realtime_client().await?;
    wait_for_rows(&client, "product_view_events").await?;
    proxy.cut();
    // The cut is real once the stream has no session left on the database: from then on it
    // cannot save anything. The second half arrives while it is away.
    wait_for_sessions(&client, 0).await?;
    produce_all(&stack, second).await?;
    let during = rows(&client, "product_view_events").await?;
    // Once back, the stream carries on by itself.
    let before = committed(&client).await?;
    proxy.restore();
    let recovery = resumed(&client, before, Instant::now()).await?;
    let log = flow.await??;

    assert!(
        log.contains("failed; retrying"),
        "no retry was logged: {log}"
    );
    assert!(during < expected_counts(&records)[1].1);
    let saved = counts(&stack).await?;
    assert_eq!(saved, expected_counts(&records));
    assert_saved_as_modelled(&client, &records).await?;
    report(
        "realtime database connection cut",
        records.len(),
        &saved,
        recovery,
    );
    Ok(())
}

/// Waits until the database `client` is on has `n` sessions besides the test's own, at most
/// 60 s.
async fn wait_for_sessions(client: &tokio_postgres::Client, n: i64) -> Result<()> {
    let started = Instant::now();
    loop {
        let sessions: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await?
            .get(0);
        if sessions == n {
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "{sessions} sessions on the database after 60 s, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_changed_under_a_running_stream_stops_it_naming_the_setting() -> Result<()> {
    let stack = TestStack::new().await?;
    let owner = stack.realtime_client().await?;
    // A login role of this test's own in the stream's group role, so changing its password
    // touches nobody else.
    let role = format!("{}_stream", stack.id);
    owner
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'first-Pa55' IN ROLE globalmart_stream_role"
        ))
        .await?;
    let runtime = PgSettings {
        user: role.clone(),
        password: Secret::new("first-Pa55"),
        ..stack.realtime.clone()
    };
    produce_events(&stack, 2_000).await?;
    let mut command = stream(&stack);
    command
        .envs(database_env(Db::Realtime, &runtime))
        .env_remove("STREAM_EXIT_WHEN_IDLE");
    let flow = tokio::spawn(run(command));
    wait_for_rows(&owner, "product_view_events").await?;

    // The password rotated, the stream's sessions ended (as a failover does): its next
    // connection is refused, and waiting would not change that.
    owner
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD 'second-Pa55'"))
        .await?;
    owner
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await?;
    produce_events(&stack, 2_000).await?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), flow).await;
    owner.batch_execute(&format!("DROP ROLE {role}")).await?;
    let log = match outcome {
        Ok(joined) => joined?.err().map(|e| e.to_string()).unwrap_or_default(),
        Err(_) => anyhow::bail!("the stream kept retrying a refused connection for 60 s"),
    };
    assert!(log.contains("refused the connection"), "{log}");
    assert!(
        log.contains("check POSTGRES_REALTIME_USER and POSTGRES_REALTIME_PASSWORD"),
        "{log}"
    );
    assert!(!log.contains("Pa55"), "a password in the output: {log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_under_a_static_identity_resumes_at_once_and_loses_and_doubles_nothing(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let client = stack.realtime_client().await?;
    let records = events(20_000);
    let (first, second) = records.split_at(records.len() / 2);
    produce_all(&stack, first).await?;
    let mut old = stream(&stack)
        .env("STREAM_INSTANCE_ID", "stream-0")
        .env_remove("STREAM_EXIT_WHEN_IDLE")
        .stderr(Stdio::null())
        .spawn()?;
    wait_for_rows(&client, "product_view_events").await?;

    // A second instance under the same identity stops at start, naming it.
    let mut twin = stream(&stack);
    twin.env("STREAM_INSTANCE_ID", "stream-0");
    let twin = run(twin)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        twin.contains("another stream instance is running as STREAM_INSTANCE_ID=stream-0"),
        "a twin must be refused: {twin}"
    );

    // A deploy: SIGTERM to the process this test started, by its pid, then the new version.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &old.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM failed");
    ensure!(
        old.wait()?.success(),
        "the stream did not stop cleanly on SIGTERM"
    );
    let before = committed(&client).await?;
    let back = Instant::now();
    let mut new = stream(&stack);
    new.env("STREAM_INSTANCE_ID", "stream-0")
        // Longer than the second half's production on a loaded machine.
        .env("STREAM_EXIT_WHEN_IDLE", "10");
    let flow = tokio::spawn(run(new));
    produce_all(&stack, second).await?;
    let recovery = resumed(&client, before, back).await?;
    flow.await??;

    let saved = counts(&stack).await?;
    assert_eq!(saved, expected_counts(&records));
    assert_saved_as_modelled(&client, &records).await?;
    // Half the session timeout: a dynamic member would have waited out the old one's session.
    ensure!(
        recovery < Duration::from_secs(5),
        "the restarted instance took {recovery:?} to save again: a rebalance was waited for"
    );
    report(
        "SIGTERM and restart under STREAM_INSTANCE_ID (static membership)",
        records.len(),
        &saved,
        recovery,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_and_restarted_mid_flow_loses_nothing_and_doubles_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let bootstrap = broker.bootstrap_servers();
    globalmart_testkit::create_platform_topics(&bootstrap).await?;
    let records = events(20_000);
    let (before, after) = records.split_at(records.len() / 2);
    produce_to(&bootstrap, "", before).await?;

    let mut command = stream(&stack);
    command
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("KAFKA_TOPIC_PREFIX", "")
        .env("STREAM_BATCH_SIZE", "500")
        // Longer than the broker's absence plus the second half's production on a loaded
        // machine: "idle" would otherwise end the run before the second half arrives.
        .env("STREAM_EXIT_WHEN_IDLE", "30");
    let flow = tokio::spawn(run(command));
    let client = stack.realtime_client().await?;
    wait_for_rows(&client, "product_view_events").await?;
    // SIGKILL of the broker this test started, by its pid; back after a few seconds.
    broker = tokio::task::spawn_blocking(move || {
        broker.kill()?;
        std::thread::sleep(Duration::from_secs(3));
        broker.restart()?;
        anyhow::Ok(broker)
    })
    .await??;
    let back = Instant::now();
    let before = committed(&client).await?;
    produce_to(&bootstrap, "", after).await?;
    let recovery = resumed(&client, before, back).await?;
    flow.await??;

    let saved = counts(&stack).await?;
    assert_eq!(saved, expected_counts(&records));
    assert_saved_as_modelled(&client, &records).await?;
    report(
        "broker SIGKILLed, down 3 s, restarted",
        records.len(),
        &saved,
        recovery,
    );
    drop(broker);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restored_empty_is_filled_again_although_kafka_says_all_was_read() -> Result<()>
{
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 3_000).await?;
    run(stream(&stack)).await?;

    // The consumer group's offsets in Kafka now point at the end of every partition. Every
    // table emptied, as a restore of an empty backup leaves them.
    let client = stack.realtime_client().await?;
    let tables = texts(
        &client,
        "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
         WHERE schemaname = current_schema() AND tablename NOT LIKE 'refinery%'",
    )
    .await?;
    client
        .batch_execute(&format!("TRUNCATE {}", tables.concat()))
        .await?;
    assert_eq!(rows(&client, "transactions").await?, 0);
    run(stream(&stack)).await?;
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restored_from_an_older_backup_catches_up_from_its_own_offsets() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = events(6_000);
    let (first, second) = records.split_at(records.len() / 2);
    produce_all(&stack, first).await?;
    run(stream(&stack)).await?;
    let backup = std::env::temp_dir().join(format!("{}.dump", stack.id));
    pg_tool(&stack, "pg_dump", &["--format=custom", "--file"], &backup)?;

    produce_all(&stack, second).await?;
    run(stream(&stack)).await?;
    // The backup knows only the first half, and the offsets that go with it; Kafka's committed
    // offsets say everything was read. Restored into an emptied database: `pg_restore --clean`
    // over partitioned tables reports errors dropping the partitions' inherited constraints
    // (docs/RUNNING.md, "Backups").
    let owner = stack.realtime_client().await?;
    owner
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .await?;
    drop(owner);
    pg_tool(&stack, "pg_restore", &[], &backup)?;
    std::fs::remove_file(&backup)?;
    let client = stack.realtime_client().await?;
    assert_eq!(rows(&client, "transactions").await?, lines(first));
    run(stream(&stack)).await?;
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

/// Runs PostgreSQL's `tool` (pg_dump, pg_restore) on the stack's realtime database with `args`
/// and `file`.
fn pg_tool(stack: &TestStack, tool: &str, args: &[&str], file: &std::path::Path) -> Result<()> {
    let db = &stack.realtime;
    let output = std::process::Command::new(tool)
        .args(args)
        .arg(file)
        .args(["--host", &db.host, "--port", &db.port.to_string()])
        .args([
            "--username",
            &db.user,
            "--dbname",
            &db.dbname,
            "--no-password",
        ])
        .env("PGPASSWORD", db.password.expose())
        .output()?;
    ensure!(
        output.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
