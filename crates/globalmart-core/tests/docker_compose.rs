//! docker-compose.yml cannot be started here (no Docker engine), so this reads it and checks
//! what a Docker user depends on: the services and their container names from the guide, the
//! images, the published ports (localhost only), the mounts (which must exist in the repository),
//! Kafka in KRaft mode with every platform topic, and the documented passwords.

use std::path::Path;

use anyhow::{Context, Result};
use globalmart_core::topics::Topic;
use serde_yaml::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn compose() -> Result<Value> {
    let text = std::fs::read_to_string(Path::new(REPO).join("docker-compose.yml"))?;
    Ok(serde_yaml::from_str(&text)?)
}

fn service<'a>(compose: &'a Value, name: &str) -> Result<&'a Value> {
    compose["services"]
        .get(name)
        .with_context(|| format!("no service {name}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn env<'a>(service: &'a Value, key: &str) -> Option<&'a str> {
    service["environment"].get(key).and_then(Value::as_str)
}

#[test]
fn services_have_the_guides_container_names_and_images() -> Result<()> {
    let compose = compose()?;
    for (name, container, image) in [
        ("kafka", "globalmart-kafka", "apache/kafka:4."),
        (
            "postgres-warehouse",
            "globalmart-postgres-wh",
            "postgres:15",
        ),
        ("postgres-realtime", "globalmart-postgres-rt", "postgres:15"),
        ("redis", "globalmart-redis", "redis:"),
        ("grafana", "globalmart-grafana", "grafana/grafana:"),
        ("prometheus", "globalmart-prometheus", "prom/prometheus:"),
    ] {
        let service = service(&compose, name)?;
        assert_eq!(
            service["container_name"].as_str(),
            Some(container),
            "{name}"
        );
        let actual = service["image"].as_str().unwrap_or_default();
        assert!(
            actual.starts_with(image),
            "{name}: image {actual}, expected {image}…"
        );
    }
    assert!(
        compose["services"].get("zookeeper").is_none(),
        "KRaft needs no ZooKeeper"
    );
    Ok(())
}

#[test]
fn ports_are_the_documented_ones_on_localhost_only() -> Result<()> {
    let compose = compose()?;
    for (name, port) in [
        ("kafka", "127.0.0.1:9092:9092"),
        ("postgres-warehouse", "127.0.0.1:5432:5432"),
        ("postgres-realtime", "127.0.0.1:5433:5432"),
        ("redis", "127.0.0.1:6379:6379"),
    ] {
        assert_eq!(
            strings(&service(&compose, name)?["ports"]),
            vec![port],
            "{name}"
        );
    }
    let grafana = service(&compose, "grafana")?;
    assert_eq!(grafana["network_mode"].as_str(), Some("host"));
    assert_eq!(env(grafana, "GF_SERVER_HTTP_ADDR"), Some("127.0.0.1"));
    assert_eq!(
        grafana["environment"]["GF_SERVER_HTTP_PORT"].as_u64(),
        Some(3000)
    );
    let prometheus = service(&compose, "prometheus")?;
    assert_eq!(prometheus["network_mode"].as_str(), Some("host"));
    assert!(
        strings(&prometheus["command"]).contains(&"--web.listen-address=127.0.0.1:9090".to_owned())
    );
    Ok(())
}

#[test]
fn mounts_point_at_files_of_the_repository() -> Result<()> {
    let compose = compose()?;
    let expected = [
        ("postgres-warehouse", "./sql/warehouse:/globalmart/sql:ro"),
        ("postgres-realtime", "./sql/realtime:/globalmart/sql:ro"),
        (
            "postgres-realtime",
            "./scripts/postgres/initdb.sh:/docker-entrypoint-initdb.d/globalmart.sh:ro",
        ),
        (
            "postgres-warehouse",
            "./scripts/postgres/runtime-logins.sql:/globalmart/runtime-logins.sql:ro",
        ),
        (
            "postgres-warehouse",
            "./scripts/postgres/migrate.sh:/globalmart/migrate.sh:ro",
        ),
        (
            "grafana",
            "./grafana/provisioning:/etc/grafana/provisioning:ro",
        ),
        (
            "grafana",
            "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
        ),
        (
            "prometheus",
            "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        ),
    ];
    for (name, mount) in expected {
        let volumes = strings(&service(&compose, name)?["volumes"]);
        assert!(
            volumes.iter().any(|v| v == mount),
            "{name} lacks {mount}: {volumes:?}"
        );
    }
    let services = compose["services"].as_mapping().context("services")?;
    for (name, service) in services {
        for volume in strings(&service["volumes"]) {
            if let Some(host) = volume.strip_prefix("./") {
                let host = host.split(':').next().unwrap_or_default();
                assert!(
                    Path::new(REPO).join(host).exists(),
                    "{name:?} mounts ./{host}, which is not in the repository"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn kafka_runs_kraft_and_every_topic_is_created() -> Result<()> {
    let compose = compose()?;
    let kafka = service(&compose, "kafka")?;
    assert_eq!(env(kafka, "KAFKA_PROCESS_ROLES"), Some("broker,controller"));
    assert!(env(kafka, "KAFKA_ADVERTISED_LISTENERS").is_some_and(|l| l.contains("localhost:9092")));
    let init = strings(&service(&compose, "kafka-init")?["command"]).join("\n");
    let compacted_line = init
        .lines()
        .find(|line| line.contains("cleanup.policy=compact"))
        .context("no compacted topics")?;
    for topic in Topic::ALL {
        assert!(
            init.contains(topic.name()),
            "kafka-init does not create {}",
            topic.name()
        );
        assert_eq!(
            compacted_line.contains(topic.name()),
            topic.is_compacted(),
            "{} compaction",
            topic.name()
        );
    }
    assert!(init.contains("--partitions 3"));
    Ok(())
}

#[test]
fn databases_use_the_documented_names_and_passwords() -> Result<()> {
    let compose = compose()?;
    let warehouse = service(&compose, "postgres-warehouse")?;
    assert_eq!(
        env(warehouse, "POSTGRES_DB"),
        Some("${POSTGRES_WAREHOUSE_DB:-globalmart_warehouse}")
    );
    assert_eq!(
        env(warehouse, "POSTGRES_PASSWORD"),
        Some("${POSTGRES_WAREHOUSE_PASSWORD:-warehouse_password}")
    );
    let realtime = service(&compose, "postgres-realtime")?;
    assert_eq!(
        env(realtime, "POSTGRES_DB"),
        Some("${POSTGRES_REALTIME_DB:-globalmart_realtime}")
    );
    assert_eq!(
        env(realtime, "POSTGRES_PASSWORD"),
        Some("${POSTGRES_REALTIME_PASSWORD:-realtime_password}")
    );
    assert_eq!(
        env(realtime, "POSTGRES_USER"),
        Some("${POSTGRES_REALTIME_USER:-globalmart_user}")
    );
    Ok(())
}
