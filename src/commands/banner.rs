//! The server's opening lines: where it listens, how to connect from another machine, its limits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use console::style;

use crate::config::ServeConfig;
use crate::protocol::DEFAULT_PORT;
use crate::server::Server;
use crate::term::human_duration;

/// Tells the room how to connect: every address of this machine a client can use,
/// as ready-to-copy commands for ftx and for the classroom Python client.
pub(super) fn print(server: &Server, config: &ServeConfig) {
    let addr = server.local_addr();
    crate::say!(
        "ftx serve: listening on {addr}, saving into {}",
        server.folder().path().display()
    );
    let port_arg = if addr.port() == DEFAULT_PORT {
        String::new()
    } else {
        format!(" {}", addr.port())
    };
    let reachable = reachable_addresses(addr);
    crate::say!(
        "  send from {}:",
        if reachable.iter().all(IpAddr::is_loopback) {
            "this machine"
        } else {
            "another machine"
        }
    );
    for ip in reachable {
        let target = SocketAddr::new(ip, addr.port());
        crate::say!(
            "    {}    {}",
            style(format!("ftx send --to {target} FILE...")).bold(),
            style(format!("python client.py FILE {ip}{port_arg}")).bold()
        );
    }
    let limit = |value: Option<String>, none: &str| value.unwrap_or_else(|| none.to_string());
    crate::say!(
        "  {} workers · idle timeout {} · {} · {}{}",
        config.workers,
        human_duration(config.idle_timeout),
        limit(
            config
                .max_size
                .map(|m| format!("max size {}", indicatif::HumanBytes(m))),
            "no size limit"
        ),
        limit(
            config.per_ip.map(|n| format!("at most {n} per address")),
            "no per-address cap"
        ),
        config
            .rate
            .map(|r| format!(" · {}/s per upload", indicatif::HumanBytes(r)))
            .unwrap_or_default(),
    );
}

/// Most addresses the banner lists.
const MAX_BANNER_ADDRESSES: usize = 4;

/// The addresses clients can use to reach a listener on `addr`.
fn reachable_addresses(addr: SocketAddr) -> Vec<IpAddr> {
    if !addr.ip().is_unspecified() {
        return vec![addr.ip()];
    }
    let v6 = addr.is_ipv6();
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|iface| iface.ip())
        .filter(|ip| !ip.is_loopback())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            // Link-local IPv6 addresses need a scope id that no one will type.
            IpAddr::V6(v6addr) => v6 && (v6addr.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips.truncate(MAX_BANNER_ADDRESSES);
    if ips.is_empty() {
        ips.push(if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        });
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_address_is_shown_as_it_is() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(reachable_addresses(addr), vec![addr.ip()]);
    }

    #[test]
    fn listening_everywhere_shows_usable_addresses() {
        for any in ["0.0.0.0:12000", "[::]:12000"] {
            let ips = reachable_addresses(any.parse().unwrap());
            assert!(
                !ips.is_empty() && ips.len() <= MAX_BANNER_ADDRESSES,
                "{any}: {ips:?}"
            );
            assert!(ips.iter().all(|ip| !ip.is_unspecified()), "{any}: {ips:?}");
            // Either real interface addresses, or loopback when there are none.
            assert!(
                ips.iter().all(|ip| !ip.is_loopback()) || ips.len() == 1,
                "{any}: {ips:?}"
            );
        }
    }
}
