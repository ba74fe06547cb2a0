//! The embedded MQTT broker (rumqttd) that `voicepay demo` starts when no `--broker` is given.

use std::time::Duration;

use voicepay_core::transport::BrokerUrl;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker: no free loopback port: {0}")]
    Port(std::io::Error),
    #[error("embedded broker: bad configuration: {0}")]
    Config(#[from] toml::de::Error),
    #[error("embedded broker: cannot start its thread: {0}")]
    Thread(std::io::Error),
    #[error("embedded broker: not listening on port {0}")]
    NotListening(u16),
}

/// Starts a broker on a free loopback port; it serves until the process ends.
pub fn start_embedded() -> Result<BrokerUrl, BrokerError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::Port)?
        .port();
    // MQTT 5, which the daemon and the gateway speak (they say a Maximum
    // Packet Size); our messages are at most 64 KiB plus framing.
    let config: rumqttd::Config = toml::from_str(&format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 64
        max_outgoing_packet_count = 200
        max_segment_size = 10485760
        max_segment_count = 10
        [v5.1]
        name = "v5-1"
        listen = "127.0.0.1:{port}"
        next_connection_delay_ms = 1
        [v5.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = 70000
        max_inflight_count = 100
        dynamic_filters = true
        "#
    ))?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(error) = broker.start() {
                tracing::error!(%error, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(BrokerUrl::plain("127.0.0.1", port));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(BrokerError::NotListening(port))
}
