//! Addresses as users write them (`PORT`, `HOST`, `HOST:PORT`, `[IPv6]:PORT`): checked when the command line is read, resolved when the run starts.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

use crate::protocol::DEFAULT_PORT;

/// A host and a port, not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    /// Parses `PORT`, `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address,
    /// filling in `default_host` or port 12000. Only the form is checked here:
    /// a name that does not resolve is a failure of the run, not of the command line.
    pub fn parse(text: &str, default_host: &str) -> anyhow::Result<Address> {
        let text = text.trim();
        let port = |p: &str| -> anyhow::Result<u16> {
            // The parser's own words ("number too large to fit in target type") say nothing more.
            p.parse().map_err(|_| {
                anyhow::anyhow!("'{p}' in '{text}' is not a port: ports go from 0 to 65535")
            })
        };
        let at = |host: &str, port: u16| Address {
            host: host.to_string(),
            port,
        };
        if text.is_empty() {
            bail!("the address is empty");
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(at(default_host, port(text)?));
        }
        if let Some(rest) = text.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                bail!("'{text}' has '[' without ']'");
            };
            host.parse::<Ipv6Addr>()
                .map_err(|_| anyhow::anyhow!("'{host}' is not an IPv6 address"))?;
            return match after {
                "" => Ok(at(host, DEFAULT_PORT)),
                _ => match after.strip_prefix(':') {
                    Some(p) => Ok(at(host, port(p)?)),
                    None => bail!("expected ':PORT' after ']' in '{text}'"),
                },
            };
        }
        if text.parse::<Ipv6Addr>().is_ok() {
            return Ok(at(text, DEFAULT_PORT));
        }
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                bail!("'{text}': write IPv6 addresses with a port as [ADDR]:PORT")
            }
            Some(("", p)) => Ok(at(default_host, port(p)?)),
            Some((host, p)) => Ok(at(host, port(p)?)),
            None => Ok(at(text, DEFAULT_PORT)),
        }
    }

    /// An address for an already known socket address.
    pub fn from_socket(addr: SocketAddr) -> Address {
        Address {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// Looks the host up; every address it has, in the resolver's order.
    pub fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let resolved: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| {
                format!(
                    "cannot find the address of '{}': check the name, or give an IP address",
                    self.host
                )
            })?
            .collect();
        if resolved.is_empty() {
            bail!("'{}' has no address", self.host);
        }
        Ok(resolved)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An IPv6 address, with its interface (`fe80::1%3`) or without.
        let ip = self.host.split('%').next().unwrap_or_default();
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, u16) {
        let a = Address::parse(text, "0.0.0.0").unwrap();
        (a.host, a.port)
    }

    #[test]
    fn address_forms() {
        assert_eq!(parsed("9000"), ("0.0.0.0".into(), 9000));
        assert_eq!(parsed(":9000"), ("0.0.0.0".into(), 9000));
        assert_eq!(parsed("example.org"), ("example.org".into(), 12000));
        assert_eq!(parsed("10.1.2.3:80"), ("10.1.2.3".into(), 80));
        assert_eq!(parsed("[::1]:7000"), ("::1".into(), 7000));
        assert_eq!(parsed("[::1]"), ("::1".into(), 12000));
        assert_eq!(parsed("fe80::1"), ("fe80::1".into(), 12000));
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let err = |t: &str| format!("{:#}", Address::parse(t, "h").unwrap_err());
        assert_eq!(
            err("host:99999"),
            "'99999' in 'host:99999' is not a port: ports go from 0 to 65535",
            "no Rust error text after it"
        );
        assert_eq!(err("[x]:1"), "'x' is not an IPv6 address");
        assert!(err("99999").contains("not a port"));
        assert!(err("[::1").contains("without ']'"));
        assert!(err("[nope]:1").contains("not an IPv6 address"));
        assert!(err("::1:80x").contains("[ADDR]:PORT"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn resolves_names_and_shows_ipv6_in_brackets() {
        let local = Address::parse("localhost:5000", "127.0.0.1").unwrap();
        assert!(local
            .resolve()
            .unwrap()
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 5000));
        assert_eq!(
            Address::parse("[::1]:1", "x").unwrap().to_string(),
            "[::1]:1"
        );
        assert_eq!(
            Address::parse("7", "127.0.0.1").unwrap().resolve().unwrap(),
            vec!["127.0.0.1:7".parse().unwrap()]
        );
        let nowhere = Address::parse("no.such.host.invalid", "x").unwrap();
        assert!(format!("{:#}", nowhere.resolve().unwrap_err()).contains("cannot find the address"));
    }
}
