//! TLS to PostgreSQL with libpq's `sslmode` meanings, through OpenSSL (docs/ARCHITECTURE.md,
//! "Connections"): the same library and system CAs librdkafka uses for Kafka.

use std::path::PathBuf;

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;

/// How much TLS a connection insists on, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, plaintext otherwise; the certificate is not checked
    /// (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is checked only when a root certificate is given
    /// (as libpq does).
    Require,
    /// TLS with a certificate signed by the root certificate (or a system CA).
    VerifyCa,
    /// As verify-ca, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The name used in settings and logs (`verify-full`).
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct PgTls {
    pub mode: SslMode,
    /// PEM file of the CA certificates to trust instead of the system's.
    pub root_cert: Option<PathBuf>,
}

/// The root certificate file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate{}", .source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Pem {
        path: String,
        source: Option<ErrorStack>,
    },
    #[error("cannot set up OpenSSL: {0}")]
    OpenSsl(#[from] ErrorStack),
}

impl PgTls {
    /// The mode tokio-postgres negotiates with: whether TLS is tried and whether it is required.
    pub fn negotiation(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }

    /// The connector: it checks the server's certificate as the mode says.
    pub fn connector(&self) -> Result<MakeTlsConnector, TlsError> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        let verify = match self.mode {
            SslMode::Disable | SslMode::Prefer => false,
            SslMode::Require => self.root_cert.is_some(),
            SslMode::VerifyCa | SslMode::VerifyFull => true,
        };
        if !verify {
            builder.set_verify(SslVerifyMode::NONE);
        } else if let Some(path) = &self.root_cert {
            // Only these CAs, as libpq's sslrootcert: not the system's as well.
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                path: shown.clone(),
                source,
            })?;
            let certificates = match X509::stack_from_pem(&pem) {
                Ok(certificates) if !certificates.is_empty() => certificates,
                Ok(_) => {
                    return Err(TlsError::Pem {
                        path: shown,
                        source: None,
                    })
                }
                Err(e) => {
                    return Err(TlsError::Pem {
                        path: shown,
                        source: Some(e),
                    })
                }
            };
            let mut store = X509StoreBuilder::new()?;
            for certificate in certificates {
                store.add_cert(certificate)?;
            }
            builder.set_cert_store(store.build());
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        if self.mode != SslMode::VerifyFull {
            connector.set_callback(|config, _host| {
                config.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(connector)
    }
}
