//! MQTT: broker addresses and client options shared by the device and the gateway.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rumqttc::MqttOptions;

use crate::protocol::MAX_MESSAGE_BYTES;

/// `mqtt://HOST:PORT` (port 1883 when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("broker {0:?}: expected mqtt://HOST:PORT")]
pub struct BadBrokerUrl(String);

impl FromStr for BrokerUrl {
    type Err = BadBrokerUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = || BadBrokerUrl(url.to_owned());
        let rest = url.strip_prefix("mqtt://").ok_or_else(bad)?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (rest, 1883),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

impl BrokerUrl {
    /// Client options: our message size limit (plus MQTT framing) both ways,
    /// so an oversized message is refused by the client, not parsed by us.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        let max_packet = MAX_MESSAGE_BYTES + 1024;
        options.set_max_packet_size(max_packet, max_packet);
        options.set_keep_alive(Duration::from_secs(15));
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let url: BrokerUrl = "mqtt://127.0.0.1:18830".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 18830));
        assert_eq!("mqtt://broker".parse::<BrokerUrl>().unwrap().port, 1883);
        for bad in [
            "127.0.0.1:1883",
            "mqtt://:1883",
            "mqtt://h:port",
            "http://h:1",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
    }
}
