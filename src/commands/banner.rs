//! The server's opening lines: where it listens, how to connect from another machine, its limits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::term::Bytes;
use console::style;

use crate::config::ServeConfig;
use crate::server::Server;
use crate::term::{human_duration, plural};

/// Below this many open files, the banner says the limit is low for a crowd.
const FEW_OPEN_FILES: u64 = 4096;

/// How to run this ftx from a shell here: `ftx` when that finds this very
/// program on PATH, otherwise the path it was started as (quoted if need be).
fn this_program() -> String {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let found = std::fs::canonicalize(dir.join("ftx")).ok();
            found.is_some() && found == me
        })
    });
    let started_as = std::env::args_os().next().map(std::path::PathBuf::from);
    match started_as {
        Some(path) if !on_path => {
            let shown = crate::names::escape_for_terminal(path.as_os_str().as_encoded_bytes());
            if shown.contains([' ', '\'', '"']) {
                format!("'{}'", shown.replace('\'', "'\\''"))
            } else {
                shown
            }
        }
        _ => "ftx".to_string(),
    }
}

/// The server's opening lines, kept to be laid out again at any width: the
/// live view paints them afresh when the terminal is resized.
pub(super) struct Banner {
    /// The first line's terms.
    head: Vec<String>,
    /// `send from ...:` and its commands, each a row of its own.
    sends: Vec<(String, Vec<String>)>,
    /// How to send by name on the same network, if the hello is heard.
    by_name: Option<String>,
    classroom: Vec<String>,
    limits: Vec<String>,
}

/// Prints the banner at the terminal's width, and gives it back for the live view.
pub(super) fn print(server: &Server, config: &ServeConfig) -> Banner {
    let banner = Banner::new(server, config);
    let term = console::Term::stderr();
    let width = if term.is_term() {
        usize::from(term.size().1)
    } else {
        80
    };
    for line in banner.lines(width) {
        crate::say!("{line}");
    }
    banner
}

impl Banner {
    /// Tells the room how to connect: every address of this machine a client can use,
    /// as ready-to-copy commands for ftx and the address and port for classroom
    /// clients; then the server's limits. Short lines: it is read on a projector.
    fn new(server: &Server, config: &ServeConfig) -> Banner {
        let addr = server.local_addr();
        let head = vec![
            "ftx serve:".into(),
            format!("listening on {addr},"),
            format!("saving into {}", server.folder().path().display()),
            "(Ctrl-C to stop)".into(),
        ];
        let reachable = reachable_addresses(addr);
        let (here, away): (Vec<IpAddr>, Vec<IpAddr>) =
            reachable.iter().partition(|ip| ip.is_loopback());
        // Here, the program as it was started when `ftx` on PATH is not it
        // (`cargo run`, ./ftx); elsewhere, the ftx installed there.
        let here_program = this_program();
        let command = |program: &str, ip: &IpAddr| {
            style(format!(
                "{program} send --to {} FILE...",
                SocketAddr::new(*ip, addr.port())
            ))
            .bold()
            .to_string()
        };
        let mut sends = Vec::new();
        for (from, ips, program) in [
            ("this machine", &here, here_program.as_str()),
            ("another machine", &away, "ftx"),
        ] {
            if !ips.is_empty() {
                let commands = ips.iter().map(|ip| command(program, ip)).collect();
                sends.push((format!("  send from {from}:"), commands));
            }
        }
        // Found by name where its hello is heard: on every address, so broadcasts too.
        let by_name = (server.hello().is_ok() && addr.ip().is_unspecified() && !away.is_empty())
            .then(|| {
                let name = crate::names::escape_for_terminal(config.name.as_bytes());
                let by_name = match addr.port() {
                    crate::protocol::DEFAULT_PORT => format!("ftx send -t @{name} FILE..."),
                    port => format!("ftx send -t @{name}:{port} FILE..."),
                };
                format!("    or, on the same network: {}", style(by_name).bold())
            });
        let ips: Vec<String> = away.iter().chain(&here).map(IpAddr::to_string).collect();
        let classroom = vec![
            format!("classroom clients: IP {}", style(ips.join(" or ")).bold()),
            format!("port {}", style(addr.port()).bold()),
        ];
        Banner {
            head,
            sends,
            by_name,
            classroom,
            limits: limits(server, config),
        }
    }

    /// The banner's lines for a terminal `width` columns wide: they break
    /// between terms, never inside one.
    pub fn lines(&self, width: usize) -> Vec<String> {
        let mut lines = pack("", &self.head, " ", width);
        for (from, commands) in &self.sends {
            lines.push(from.clone());
            for line in commands {
                // A long path to the program goes unindented rather than wrapped.
                let indent = if 4 + console::measure_text_width(line) > width {
                    ""
                } else {
                    "    "
                };
                lines.push(format!("{indent}{line}"));
            }
        }
        lines.extend(self.by_name.clone());
        lines.extend(pack("  ", &self.classroom, ", ", width));
        lines.extend(pack("  ", &self.limits, " · ", width));
        // A term wider than the terminal on its own breaks between words.
        lines
            .iter()
            .flat_map(|line| crate::term::wrap(line, width))
            .collect()
    }
}

/// The server's limits, a term each.
fn limits(server: &Server, config: &ServeConfig) -> Vec<String> {
    let mut terms = vec![
        plural(config.workers as u64, "worker", "workers"),
        format!("headers within {}", human_duration(config.header_timeout)),
        format!("idle timeout {}", human_duration(config.idle_timeout)),
        config.min_rate().map_or_else(
            || "no minimum rate".to_string(),
            |rate| {
                format!(
                    "at least {}/s per {}",
                    Bytes(rate),
                    human_duration(config.min_rate_window)
                )
            },
        ),
        config.max_size.map_or_else(
            || "no size limit".to_string(),
            |m| format!("max size {}", Bytes(m)),
        ),
        config.per_ip.map_or_else(
            || "no per-address cap".to_string(),
            |n| format!("at most {n} per address"),
        ),
    ];
    if let Some(rate) = config.rate {
        terms.push(format!("{}/s per upload", Bytes(rate)));
    }
    match server.hello() {
        Ok(udp) => terms.push(format!(
            "answers hellos as \"{}\" on UDP port {}",
            crate::names::escape_for_terminal(config.name.as_bytes()),
            udp.port()
        )),
        Err(why) => terms.push(format!(
            "{}: senders learn it is ftx from their first file",
            style(format!("no hello ({why})")).yellow()
        )),
    }
    let limits = server.limits();
    match limits.open_files {
        Some(files) if files < FEW_OPEN_FILES => terms.push(format!(
            "only {} open files: raise it with ulimit -n for more clients at once",
            style(files).yellow()
        )),
        Some(files) => {
            terms.push(format!("up to {files} clients at once"));
            terms.push(format!("{} more queued by the kernel", limits.backlog));
        }
        None => {}
    }
    terms
}

/// `terms` joined by `separator`, as many to a line as fit before column `width`, each
/// line after the first starting with `indent`.
fn pack(indent: &str, terms: &[String], separator: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for term in terms {
        let candidate = if line.is_empty() {
            format!("{indent}{term}")
        } else {
            format!("{line}{separator}{term}")
        };
        // Short of the last column, as every line of the live view.
        if !line.is_empty() && console::measure_text_width(&candidate) >= width {
            lines.push(std::mem::take(&mut line));
            line = format!("{indent}{term}");
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Most addresses of other interfaces the banner lists.
const MAX_BANNER_ADDRESSES: usize = 4;

/// The addresses clients can use to reach a listener on `addr`: the address
/// itself, or, for a listener on all addresses, loopback and up to four
/// addresses of the machine's other interfaces.
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
    ips.insert(
        0,
        if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        },
    );
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_between_terms() {
        let terms: Vec<String> = ["aaaa", "bbbb", "cccc"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(pack("  ", &terms, " · ", 80), ["  aaaa · bbbb · cccc"]);
        assert_eq!(pack("  ", &terms, " · ", 14), ["  aaaa · bbbb", "  cccc"]);
        assert_eq!(pack("  ", &terms, " · ", 3), ["  aaaa", "  bbbb", "  cccc"]);
    }

    #[test]
    fn a_specific_address_is_shown_as_it_is() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(reachable_addresses(addr), vec![addr.ip()]);
    }

    #[test]
    fn listening_everywhere_shows_loopback_and_addresses_of_this_machine() {
        for any in ["0.0.0.0:12000", "[::]:12000"] {
            let ips = reachable_addresses(any.parse().unwrap());
            assert!(ips[0].is_loopback(), "{any}: {ips:?}");
            assert!(ips.len() <= MAX_BANNER_ADDRESSES + 1, "{any}: {ips:?}");
            for ip in &ips[1..] {
                assert!(!ip.is_loopback() && !ip.is_unspecified(), "{any}: {ips:?}");
                // An address of this machine is one a socket can be bound to here.
                let bound = std::net::TcpListener::bind(SocketAddr::new(*ip, 0));
                assert!(
                    bound.is_ok(),
                    "{ip} is not an address of this machine: {bound:?}"
                );
            }
        }
    }
}
