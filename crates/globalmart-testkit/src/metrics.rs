//! A binary's Prometheus endpoint, read the way Prometheus reads it: over HTTP, as text.

use std::io::{Read, Write};

use anyhow::Result;

/// The /metrics text of a binary listening on localhost:`port`.
pub fn scrape(port: u16) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The sum of every series of metric `name` in a /metrics text (0 when it has none).
pub fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub use crate::{free_port, free_ports};

#[cfg(test)]
mod tests {
    use super::total;

    #[test]
    fn total_sums_every_series_of_the_name_and_only_of_it() {
        let text = "# HELP x_total X\n\
                    x_total{topic=\"a\"} 2\n\
                    x_total{topic=\"b\"} 3\n\
                    x_total_other 7\n\
                    y_total 1\n";
        assert_eq!(total(text, "x_total"), 5.0);
        assert_eq!(total(text, "y_total"), 1.0);
        assert_eq!(total(text, "z_total"), 0.0);
    }
}
