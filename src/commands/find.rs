//! `ftx find`: the ftx servers on the local networks, as their hellos answer (PROTOCOL.md H4), with the command that sends to each.

use crate::cli::FindArgs;
use crate::client::hello;
use crate::exit_codes::Exit;
use crate::names::escape_for_terminal;
use crate::term::human_duration;

/// Lists the servers that answer within `--wait`; exit 1 when none does.
pub fn find(args: &FindArgs) -> anyhow::Result<Exit> {
    let found = hello::find(args.port, args.wait)?;
    if args.json {
        for server in &found {
            let line = serde_json::json!({
                "name": server.said.name,
                "addresses": server.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "batch": server.said.batch,
                "workers": server.said.workers,
                "free": server.said.free,
            });
            println!("{line}");
        }
    } else if !found.is_empty() {
        let names: Vec<String> = found
            .iter()
            .map(|s| escape_for_terminal(s.said.name.as_bytes()))
            .collect();
        let width = names
            .iter()
            .map(|n| console::measure_text_width(n))
            .max()
            .unwrap_or(0);
        for (server, name) in found.iter().zip(&names) {
            let pad = width - console::measure_text_width(name);
            crate::say!(
                "{name}{}  {}  batch {}  {} of {} workers free  ftx send -t @{name} FILE...",
                " ".repeat(pad),
                server
                    .addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                server.said.batch,
                server.said.free,
                server.said.workers,
            );
        }
    }
    if found.is_empty() {
        crate::say!(
            "ftx find: no ftx server answered on the local networks within {} (on port {}; another port: --port)",
            human_duration(args.wait),
            args.port
        );
        return Ok(Exit::Failure);
    }
    Ok(Exit::Success)
}
