//! The one Prometheus endpoint: every binary registers its metrics in the default registry and
//! serves them with [`serve`] on `METRICS_ADDR` (`GET /metrics`, plus `GET /health`).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr} (METRICS_ADDR): {source}")]
pub struct MetricsError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// A running metrics endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The address actually bound (useful when asked for port 0).
    pub addr: SocketAddr,
    /// Ends when `shutdown` is cancelled.
    pub task: JoinHandle<()>,
}

/// Binds `addr` now (so a taken port fails at start-up, naming the address) and serves the
/// default registry until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MetricsError { addr, source })?;
    info!("metrics on http://{addr}/metrics");
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(respond);
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            debug!(%peer, error = %e, "metrics connection ended with an error");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "cannot accept a metrics connection"),
            }
        }
    });
    Ok(MetricsServer { addr, task })
}

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let encoder = TextEncoder::new();
            let mut body = Vec::new();
            match encoder.encode(&prometheus::gather(), &mut body) {
                Ok(()) => (StatusCode::OK, encoder.format_type().to_owned(), body),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain".to_owned(),
                    e.to_string().into_bytes(),
                ),
            }
        }
        (&Method::GET, "/health") => (StatusCode::OK, "text/plain".to_owned(), b"ok\n".to_vec()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain".to_owned(),
            b"try /metrics\n".to_vec(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// The process's peak resident memory in MiB (Linux: VmHWM in /proc/self/status), for the
/// binaries' summaries and the benchmarks; None where that is not available.
pub fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_memory_counts_what_is_resident_in_mib() {
        // 64 MiB written byte by byte, so every page is resident.
        let touched = vec![1u8; 64 << 20];
        std::hint::black_box(&touched);
        let peak = super::peak_memory_mib().expect("/proc/self/status on Linux");
        assert!((64..64 * 1024).contains(&peak), "{peak} MiB");
    }
}
