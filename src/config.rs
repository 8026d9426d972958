//! Validated settings for `serve` and `send`, built from the command line; the rest of ftx never sees clap.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::{DemoArgs, SendArgs, ServeArgs};
use crate::demo::DemoConfig;
use crate::progress::Output;
use crate::protocol::DEFAULT_PORT;

/// An address as the user wrote it, and what it resolved to.
#[derive(Debug, Clone)]
pub struct Address {
    pub text: String,
    pub resolved: Vec<SocketAddr>,
}

impl Address {
    /// Parses `PORT`, `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address,
    /// filling in `default_host` or port 12000, and resolves host names.
    pub fn parse(text: &str, default_host: &str) -> anyhow::Result<Address> {
        let (host, port) = split_host_port(text.trim(), default_host)?;
        let resolved: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve '{host}'"))?
            .collect();
        if resolved.is_empty() {
            bail!("'{host}' resolves to no address");
        }
        Ok(Address {
            text: format_host_port(&host, port),
            resolved,
        })
    }
}

fn split_host_port(text: &str, default_host: &str) -> anyhow::Result<(String, u16)> {
    let port = |p: &str| -> anyhow::Result<u16> {
        p.parse()
            .with_context(|| format!("'{p}' in '{text}' is not a port (0-65535)"))
    };
    if text.is_empty() {
        bail!("the address is empty");
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((default_host.to_string(), port(text)?));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            bail!("'{text}' has '[' without ']'");
        };
        host.parse::<Ipv6Addr>()
            .with_context(|| format!("'{host}' is not an IPv6 address"))?;
        return match after {
            "" => Ok((host.to_string(), DEFAULT_PORT)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host.to_string(), port(p)?)),
                None => bail!("expected ':PORT' after ']' in '{text}'"),
            },
        };
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok((text.to_string(), DEFAULT_PORT));
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            bail!("'{text}': write IPv6 addresses with a port as [ADDR]:PORT")
        }
        Some(("", p)) => Ok((default_host.to_string(), port(p)?)),
        Some((host, p)) => Ok((host.to_string(), port(p)?)),
        None => Ok((text.to_string(), DEFAULT_PORT)),
    }
}

fn format_host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// Settings for `ftx serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: Address,
    pub dir: PathBuf,
    pub workers: usize,
    pub idle_timeout: Duration,
    /// Largest announced size accepted; `None` accepts any, as the protocol promises.
    pub max_size: Option<u64>,
    /// Most simultaneous connections (waiting or receiving) from one IP address.
    pub per_ip: Option<usize>,
    /// Receive with splice(2) where the system has it (off only to test the portable path).
    pub splice: bool,
    /// Report each protocol step (`--trace`).
    pub trace: bool,
    /// Receive each upload at most this many bytes per second.
    pub rate: Option<u64>,
    pub output: Output,
}

impl ServeConfig {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        Ok(ServeConfig {
            listen: Address::parse(&args.listen, "0.0.0.0").context("--listen")?,
            dir: args.dir,
            workers: usize::from(args.workers),
            idle_timeout: args.idle_timeout,
            max_size: args.max_size,
            per_ip: args.per_ip.map(usize::from),
            splice: !args.no_splice,
            trace: args.view.trace,
            rate: args.rate,
            output: Output::choose(args.view.plain, args.view.json),
        })
    }
}

/// Settings for `ftx send`.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub to: Address,
    pub jobs: usize,
    pub output: Output,
    pub files: Vec<PathBuf>,
    /// Send with sendfile(2) where the system has it (off only to test the portable path).
    pub sendfile: bool,
    /// Report each protocol step (`--trace`).
    pub trace: bool,
    /// Send each file at most this many bytes per second.
    pub rate: Option<u64>,
}

impl SendConfig {
    pub fn from_args(args: SendArgs) -> anyhow::Result<SendConfig> {
        let to = Address::parse(&args.to, "127.0.0.1").context("--to")?;
        if to.resolved.iter().any(|a| a.port() == 0) {
            bail!("--to: port 0 cannot be connected to");
        }
        Ok(SendConfig {
            to,
            jobs: usize::from(args.jobs),
            output: Output::choose(args.view.plain, args.view.json),
            files: args.files,
            sendfile: !args.no_sendfile,
            trace: args.view.trace,
            rate: args.rate,
        })
    }
}

/// Settings for `ftx demo`.
pub fn demo_config(args: DemoArgs) -> DemoConfig {
    DemoConfig {
        clients: usize::from(args.clients),
        workers: usize::from(args.workers),
        size: args.size,
        duration: args.duration,
        output: Output::choose(args.plain, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, u16) {
        split_host_port(text, "0.0.0.0").unwrap()
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
        let err = |t: &str| format!("{:#}", split_host_port(t, "h").unwrap_err());
        assert!(err("host:99999").contains("not a port"));
        assert!(err("[::1").contains("without ']'"));
        assert!(err("[nope]:1").contains("not an IPv6 address"));
        assert!(err("::1:80x").contains("[ADDR]:PORT"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn resolves_names_and_shows_ipv6_in_brackets() {
        let local = Address::parse("localhost:5000", "127.0.0.1").unwrap();
        assert!(local
            .resolved
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 5000));
        assert_eq!(Address::parse("[::1]:1", "x").unwrap().text, "[::1]:1");
        assert_eq!(
            Address::parse("7", "127.0.0.1").unwrap().resolved,
            vec!["127.0.0.1:7".parse().unwrap()]
        );
    }
}
