//! The one Kafka client configuration: every producer and consumer of the workspace starts from
//! [`client_config`], so connection and security settings are read in one place and reach every
//! client alike (docs/ARCHITECTURE.md, "Connections"). [`Refusals`] tells a refused connection
//! (bad credentials, an untrusted certificate, TLS on one side only), which retrying will not
//! mend, from an outage, which librdkafka rides out by itself.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{ConfigError, KafkaArgs};

/// A client configuration for `kafka`'s brokers, named `client_id` in the broker's logs and
/// metrics. Callers add what is particular to their client (acks, group, offsets). Settings
/// that contradict each other (a user name without SASL, a certificate without its key) are
/// refused, naming the key.
pub fn client_config(kafka: &KafkaArgs, client_id: &str) -> Result<ClientConfig, ConfigError> {
    check(kafka)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id)
        .set("security.protocol", kafka.security_protocol.name());
    if kafka.security_protocol.is_sasl() {
        config.set("sasl.mechanism", kafka.sasl_mechanism.name());
        if let Some(username) = &kafka.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(password) = &kafka.sasl_password {
            config.set("sasl.password", password.expose());
        }
    }
    let files = [
        ("ssl.ca.location", &kafka.ssl_ca_location),
        ("ssl.certificate.location", &kafka.ssl_certificate_location),
        ("ssl.key.location", &kafka.ssl_key_location),
    ];
    for (property, path) in files {
        if let Some(path) = path {
            config.set(property, path.to_string_lossy());
        }
    }
    if let Some(password) = &kafka.ssl_key_password {
        config.set("ssl.key.password", password.expose());
    }
    Ok(config)
}

/// The combinations a broker would only refuse later, or that would be silently ignored.
fn check(kafka: &KafkaArgs) -> Result<(), ConfigError> {
    let protocol = kafka.security_protocol.name();
    let invalid = |key: &str, value: &str, allowed: String| ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        allowed,
    };
    if kafka.security_protocol.is_sasl() {
        if kafka.sasl_username.is_none() {
            return Err(invalid(
                "KAFKA_SASL_USERNAME",
                "",
                format!("required with KAFKA_SECURITY_PROTOCOL={protocol}"),
            ));
        }
        if kafka.sasl_password.is_none() {
            return Err(invalid(
                "KAFKA_SASL_PASSWORD",
                "",
                format!("required with KAFKA_SECURITY_PROTOCOL={protocol} (or KAFKA_SASL_PASSWORD_FILE)"),
            ));
        }
    } else if kafka.sasl_username.is_some() || kafka.sasl_password.is_some() {
        return Err(invalid(
            "KAFKA_SECURITY_PROTOCOL",
            protocol,
            "a SASL user or password is set: use SASL_SSL (or SASL_PLAINTEXT)".into(),
        ));
    }
    let (certificate, key) = (
        kafka.ssl_certificate_location.is_some(),
        kafka.ssl_key_location.is_some(),
    );
    let tls_files = [
        ("KAFKA_SSL_CA_LOCATION", kafka.ssl_ca_location.is_some()),
        ("KAFKA_SSL_CERTIFICATE_LOCATION", certificate),
        ("KAFKA_SSL_KEY_LOCATION", key),
    ];
    if !kafka.security_protocol.is_tls() {
        if let Some((key, _)) = tls_files.iter().find(|(_, set)| *set) {
            return Err(invalid(
                "KAFKA_SECURITY_PROTOCOL",
                protocol,
                format!("{key} is set: use SSL or SASL_SSL"),
            ));
        }
    }
    match (certificate, key) {
        (true, false) => Err(invalid(
            "KAFKA_SSL_KEY_LOCATION",
            "",
            "required with KAFKA_SSL_CERTIFICATE_LOCATION (mutual TLS needs both)".into(),
        )),
        (false, true) => Err(invalid(
            "KAFKA_SSL_CERTIFICATE_LOCATION",
            "",
            "required with KAFKA_SSL_KEY_LOCATION (mutual TLS needs both)".into(),
        )),
        _ => Ok(()),
    }
}

/// The settings to check when a Kafka client reports `error` (with librdkafka's `reason`,
/// empty when only the code is known) for a reason retrying will not mend; None for an outage.
pub fn refusal(error: &KafkaError, reason: &str) -> Option<&'static str> {
    // A TLS alert from the broker about this client's certificate (mutual TLS): in TLS 1.3 it
    // comes after the handshake, with the first request, so whatever the code.
    // (OpenSSL names them "alert bad certificate", "alert certificate unknown", "alert unknown
    // ca", "alert certificate required".)
    if reason.contains(" alert ")
        && (reason.contains("certificate") || reason.contains("unknown ca"))
    {
        return Some(
            "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION (the broker refused this \
             client's certificate)",
        );
    }
    match error.rdkafka_error_code()? {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Some("KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM")
        }
        RDKafkaErrorCode::SSL if reason.contains("certificate verify failed") => Some(
            "KAFKA_SSL_CA_LOCATION (the CA that signed the brokers' certificates) and that \
             KAFKA_BOOTSTRAP_SERVERS names the hosts on them",
        ),
        RDKafkaErrorCode::SSL if reason.is_empty() => Some(
            "KAFKA_SSL_CA_LOCATION, KAFKA_SECURITY_PROTOCOL and that KAFKA_BOOTSTRAP_SERVERS \
             names the hosts on the brokers' certificates",
        ),
        RDKafkaErrorCode::SSL => {
            Some("KAFKA_SECURITY_PROTOCOL (does the listener speak TLS?) and KAFKA_SSL_*")
        }
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::GroupAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => Some(
            "the ACLs of KAFKA_SASL_USERNAME's principal (scripts/kafka-grant.sh grants each \
             binary what it needs)",
        ),
        RDKafkaErrorCode::FencedInstanceId => Some(
            "the instance's group.instance.id (STREAM_INSTANCE_ID): another member of the group \
             joined under the same one",
        ),
        // librdkafka's own diagnosis of a plaintext client on a TLS or SASL listener.
        _ if reason.contains("incorrect security.protocol") => Some(PROTOCOL),
        _ => None,
    }
}

const PROTOCOL: &str =
    "KAFKA_SECURITY_PROTOCOL (the listener expects TLS or SASL: SSL, SASL_SSL or SASL_PLAINTEXT?)";

/// Where a binary's Kafka clients report refusals: the first one stops the binary through its
/// shutdown token, and `main` exits with it and the settings to check.
#[derive(Debug, Clone)]
pub struct Refusals {
    stop: CancellationToken,
    first: Arc<OnceLock<String>>,
    /// Connections the brokers closed at the first request.
    closed_at_hello: Arc<AtomicU32>,
    /// Whether the brokers have answered one of this binary's requests (see [`Refusals::answered`]).
    answered: Arc<AtomicBool>,
}

/// The brokers refused this binary's connection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

impl Refusals {
    /// Refusals that cancel `stop`.
    pub fn new(stop: CancellationToken) -> Refusals {
        Refusals {
            stop,
            first: Arc::new(OnceLock::new()),
            closed_at_hello: Arc::new(AtomicU32::new(0)),
            answered: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The brokers answered a request (a delivery, an assignment): the protocol and credentials
    /// are right, so from now on a connection closed at its first request is a broker going
    /// down (its connections mid-handshake reset at once, several clients' alike), never a
    /// refusal.
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Looks at an error a client reported; true when it was a refusal (the binary is then
    /// stopping, and `main` logs it), false for anything else (the caller logs it as before).
    pub fn observe(&self, error: &KafkaError, reason: &str) -> bool {
        let Some(keys) = refusal(error, reason) else {
            return false;
        };
        if reason.is_empty() {
            self.refuse(&error.to_string(), keys);
        } else {
            self.refuse(reason, keys);
        }
        true
    }

    /// Keeps the first refusal and stops the binary, whose `main` logs it on the way out.
    fn refuse(&self, said: &str, keys: &str) {
        let message = format!("Kafka refused the connection: {said}; check {keys}");
        if self.first.set(message).is_ok() {
            info!("Kafka refused the connection: stopping");
            self.stop.cancel();
        }
    }

    /// Looks at a line librdkafka logs, then logs it as rdkafka does. A consumer's errors reach
    /// it only as codes; the log says why (and a plaintext client on a TLS listener shows only
    /// there), so refusals are told from it too.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // A listener that expects TLS or SASL closes a plaintext client's first request: once
        // may be a broker going down, three times before any answer is the protocol.
        if !self.answered.load(Ordering::Relaxed)
            && message.contains("Disconnected")
            && message.contains("in state APIVERSION_QUERY")
            && self.closed_at_hello.fetch_add(1, Ordering::Relaxed) >= 2
        {
            self.refuse(message, PROTOCOL);
        }
        let code = if message.contains("SSL handshake failed") {
            Some(RDKafkaErrorCode::SSL)
        } else if message.contains("SSL routines")
            || message.contains("incorrect security.protocol")
        {
            Some(RDKafkaErrorCode::BrokerTransportFailure)
        } else if message.contains("SASL authentication error") {
            Some(RDKafkaErrorCode::Authentication)
        } else {
            None
        };
        if let Some(code) = code {
            self.observe(&KafkaError::Global(code), message);
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Warning => {
                warn!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Debug => {
                debug!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
        }
    }

    /// Whether a connection was refused: waiting for the brokers' answers is then pointless.
    pub fn refused(&self) -> bool {
        self.first.get().is_some()
    }

    /// The first refusal, if any: what `main` exits with.
    pub fn check(&self) -> Result<(), Refused> {
        match self.first.get() {
            Some(message) => Err(Refused(message.clone())),
            None => Ok(()),
        }
    }
}

/// The context of a client with nothing else to report: refusals stop the binary, other
/// errors are logged and ridden out.
impl ClientContext for Refusals {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Refusals::log(self, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !self.observe(&error, reason) {
            warn!(%error, "Kafka: {reason}; reconnecting with backoff");
        }
    }
}

impl ConsumerContext for Refusals {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_from;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn config(args: &[&str]) -> Result<ClientConfig, ConfigError> {
        let demo: Demo = parse_from(std::iter::once("demo").chain(args.iter().copied()))?;
        client_config(&demo.kafka, "test")
    }

    #[test]
    fn confluent_cloud_settings_become_librdkafka_properties() -> Result<(), ConfigError> {
        let config = config(&[
            "--kafka-security-protocol=sasl_ssl",
            "--kafka-sasl-mechanism=PLAIN",
            "--kafka-sasl-username=KEY",
            "--kafka-sasl-password=SECRET",
        ])?;
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(config.get("sasl.username"), Some("KEY"));
        assert_eq!(config.get("sasl.password"), Some("SECRET"));
        // The system's CAs: no location set.
        assert_eq!(config.get("ssl.ca.location"), None);
        let plain = self::config(&[])?;
        assert_eq!(plain.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(plain.get("sasl.mechanism"), None);
        Ok(())
    }

    #[test]
    fn contradicting_settings_are_refused_naming_the_key() {
        let key = |args: &[&str]| match config(args) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{args:?} must be refused, got {other:?}"),
        };
        assert_eq!(
            key(&["--kafka-security-protocol=SASL_SSL"]),
            "KAFKA_SASL_USERNAME"
        );
        assert_eq!(
            key(&[
                "--kafka-security-protocol=SASL_SSL",
                "--kafka-sasl-username=u"
            ]),
            "KAFKA_SASL_PASSWORD"
        );
        assert_eq!(
            key(&["--kafka-sasl-username=u", "--kafka-sasl-password=p"]),
            "KAFKA_SECURITY_PROTOCOL"
        );
        assert_eq!(
            key(&["--kafka-ssl-ca-location=/etc/hostname"]),
            "KAFKA_SECURITY_PROTOCOL"
        );
        assert_eq!(
            key(&[
                "--kafka-security-protocol=SSL",
                "--kafka-ssl-certificate-location=/etc/hostname"
            ]),
            "KAFKA_SSL_KEY_LOCATION"
        );
    }

    #[test]
    fn refusals_are_told_from_outages() {
        let global = |code| KafkaError::Global(code);
        let auth = refusal(
            &global(RDKafkaErrorCode::Authentication),
            "SASL authentication error",
        );
        assert!(auth.is_some_and(|keys| keys.contains("KAFKA_SASL_PASSWORD")));
        let ca = refusal(
            &global(RDKafkaErrorCode::SSL),
            "SSL handshake failed: certificate verify failed: unable to get local issuer certificate",
        );
        assert!(ca.is_some_and(|keys| keys.starts_with("KAFKA_SSL_CA_LOCATION")));
        let client = refusal(
            &global(RDKafkaErrorCode::BrokerTransportFailure),
            "Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert \
             number 42 (after 1ms in state APIVERSION_QUERY)",
        );
        assert!(client.is_some_and(|keys| keys.starts_with("KAFKA_SSL_CERTIFICATE_LOCATION")));
        let stopped = CancellationToken::new();
        let refusals = Refusals::new(stopped.clone());
        refusals.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "sasl_ssl://localhost:9094/bootstrap: Receive failed: error:0A000416:SSL \
             routines::sslv3 alert certificate unknown: SSL alert number 46 (after 0ms in state \
             APIVERSION_QUERY)",
        );
        assert!(stopped.is_cancelled(), "{:?}", refusals.check());
        let protocol = refusal(
            &global(RDKafkaErrorCode::BrokerTransportFailure),
            "Disconnected while requesting ApiVersion: might be caused by incorrect \
             security.protocol configuration (connecting to a SSL listener?)",
        );
        assert!(protocol.is_some_and(|keys| keys.starts_with("KAFKA_SECURITY_PROTOCOL")));
        for outage in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
        ] {
            assert_eq!(refusal(&global(outage), "Connection refused"), None);
        }
    }

    #[test]
    fn connections_closed_at_hello_are_a_refusal_only_before_the_brokers_answered() {
        // A broker SIGKILLed while three connections were mid-handshake, as librdkafka logs it.
        let closed = [
            "localhost:38971/1: Disconnected: connection reset by peer (after 0ms in state \
             APIVERSION_QUERY)",
            "GroupCoordinator: localhost:38971: Disconnected: connection reset by peer (after 1ms \
             in state APIVERSION_QUERY)",
            "localhost:38971/1: Disconnected: connection reset by peer (after 1ms in state \
             APIVERSION_QUERY, 1 identical error(s) suppressed)",
        ];
        let stop = CancellationToken::new();
        let running = Refusals::new(stop.clone());
        running.answered();
        for line in closed {
            running.log(RDKafkaLogLevel::Info, "FAIL", line);
        }
        assert!(!stop.is_cancelled() && running.check().is_ok());

        let stop = CancellationToken::new();
        let starting = Refusals::new(stop.clone());
        for line in &closed[..2] {
            starting.log(RDKafkaLogLevel::Info, "FAIL", line);
        }
        assert!(
            !stop.is_cancelled(),
            "twice may still be a broker going down"
        );
        starting.log(RDKafkaLogLevel::Info, "FAIL", closed[2]);
        let message = starting.check().err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("KAFKA_SECURITY_PROTOCOL")));
        assert!(stop.is_cancelled());
    }

    #[test]
    fn the_first_refusal_stops_the_binary_and_is_kept() {
        let stop = CancellationToken::new();
        let refusals = Refusals::new(stop.clone());
        let outage = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert!(!refusals.observe(&outage, "1/1 brokers are down"));
        assert!(!stop.is_cancelled());
        assert!(refusals.check().is_ok());
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        assert!(!refusals.refused());
        assert!(refusals.observe(&auth, "invalid credentials"));
        assert!(stop.is_cancelled() && refusals.refused());
        let message = refusals.check().err().map(|e| e.to_string());
        assert!(message.is_some_and(
            |m| m.contains("invalid credentials") && m.contains("KAFKA_SASL_USERNAME")
        ),);
    }
}
