//! The one metrics endpoint: serves the default Prometheus registry over HTTP, answers 404
//! elsewhere, names METRICS_ADDR when its port is taken, and stops on the shutdown signal.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use globalmart_core::metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn serves_registered_metrics_in_the_prometheus_text_format() -> Result<()> {
    let counter = prometheus::register_int_counter!(
        "globalmart_test_events_total",
        "Events counted by the metrics server test"
    )?;
    counter.inc_by(3);
    let shutdown = CancellationToken::new();
    let server = metrics::serve("127.0.0.1:0".parse()?, shutdown.clone()).await?;

    let response = get(server.addr, "/metrics").await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    assert!(
        response.contains("\nglobalmart_test_events_total 3\n"),
        "{response}"
    );

    assert!(get(server.addr, "/health")
        .await?
        .starts_with("HTTP/1.1 200"));
    assert!(get(server.addr, "/admin")
        .await?
        .starts_with("HTTP/1.1 404"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.task).await??;
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still listening after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_port_is_reported_with_the_address_and_the_key() -> Result<()> {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = taken.local_addr()?;
    let Err(error) = metrics::serve(addr, CancellationToken::new()).await else {
        panic!("binding a taken port must fail");
    };
    let message = error.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("METRICS_ADDR"), "{message}");
    Ok(())
}
