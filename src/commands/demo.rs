//! `ftx demo`: a server and several paced clients on loopback, in a temporary folder, verified and cleaned up; the classroom show in one command.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use crate::term::Bytes;
use anyhow::Context;
use console::style;

use crate::address::Address;
use crate::client;
use crate::config::{DemoConfig, SendConfig, ServeConfig};
use crate::exit_codes::Exit;
use crate::noise::Noise;
use crate::progress::{Event, Heading, Reporter, Side, Summary};
use crate::server::Server;

/// Names the demo's files take, in turn (a number is added past the end of the list).
const NAMES: &[&str] = &[
    "lecture-notes.pdf",
    "holiday photo.jpg",
    "dataset.csv",
    "slides-week-3.pptx",
    "main.py",
    "recording.mp3",
    "thesis-draft.docx",
    "résumé.txt",
];

/// Runs the demo; exit code 0 only if every file arrived byte-identical.
pub fn demo(config: &DemoConfig) -> anyhow::Result<Exit> {
    let temp = tempfile::Builder::new()
        .prefix("ftx-demo-")
        .tempdir()
        .context("creating a temporary folder")?;
    let sources = make_files(&temp.path().join("to-send"), config.clients, config.size)?;
    let received = temp.path().join("received");
    let server = Server::bind(&ServeConfig {
        listen: Address::parse("127.0.0.1:0", "127.0.0.1")?,
        dir: received.clone(),
        workers: config.workers,
        // The demo paces its own clients, as slowly as --size and --duration say.
        min_rate: None,
        output: config.output,
        ..ServeConfig::default()
    })?;
    let addr = server.local_addr();
    let total: u64 = sources.iter().map(|(_, len)| len).sum();
    let rate = pace_for(config);
    let heading: Option<Heading> = config.output.is_human().then(|| {
        let intro = introduction(config, total, rate, &addr.to_string(), &received);
        let heading: Heading = Box::new(move |width| {
            intro
                .iter()
                .flat_map(|line| crate::term::wrap(line, width))
                .collect()
        });
        for line in heading(usize::from(console::Term::stderr().size().1)) {
            crate::say!("{line}");
        }
        heading
    });

    let stopper = server.stopper();
    let reporter = Reporter::start(Side::Serve, config.output, None, heading);
    let events = reporter.events();
    let interrupted = super::stop_on_ctrl_c(
        server.stopper(),
        server.folder().clone(),
        events.clone(),
        "ftx demo: stopping (Ctrl-C again to quit at once)",
    )?;
    let _ = events.send(Event::Listening {
        address: addr,
        dir: received.display().to_string(),
        workers: config.workers,
    });
    let server_thread = thread::spawn(move || server.run(&events));

    let started = Instant::now();
    let send = SendConfig {
        to: Address::from_socket(addr),
        jobs: config.clients,
        files: sources.iter().map(|(path, _)| path.clone()).collect(),
        rate: Some(rate),
        // One client, one file, one connection: the classroom show.
        classic: true,
        ..SendConfig::default()
    };
    let run = client::plan(&send.files);
    // The clients are the audience's side: their outcomes count, their events are not shown.
    let (unseen, _) = crossbeam_channel::unbounded();
    let so_far = client::SoFar::new(&run, &send);
    let reports = client::upload_all(&send, &[addr], &run, &unseen, &so_far);
    stopper.stop();
    let tally = server_thread.join().expect("server thread");
    let elapsed = started.elapsed();
    reporter.finish(Summary {
        elapsed,
        tally,
        files: Vec::new(),
        to: None,
        interrupted: false,
    });

    let verified = verify(&sources, &received);
    let all_good =
        verified == sources.len() && reports.iter().all(|r| r.result.is_ok()) && tally.failed == 0;
    if config.output.is_human() {
        let mark = if all_good {
            style("✓").green().bold()
        } else {
            style("✗").red().bold()
        };
        crate::say!(
            "{mark} {verified} of {} files arrived byte-identical",
            sources.len()
        );
        if interrupted.load(Ordering::SeqCst) {
            crate::say!("ftx demo: interrupted");
        }
        let ftx = this_program();
        let mut lines = vec![
            "  the temporary folder is removed; try it for real, in two terminals:".to_string(),
            format!("    {ftx} serve -d /tmp/ftx-inbox"),
            format!("    {ftx} send FILE..."),
        ];
        if ftx != "ftx" {
            lines.push("  (cargo install --path . puts ftx on your PATH)".into());
        }
        let width = usize::from(console::Term::stderr().size().1);
        for line in &lines {
            crate::term::say_wrapped(line, width);
        }
    }
    Ok(if all_good {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// How to run this program again from a shell: `ftx` when that is what
/// PATH finds, else its path (after `cargo run`, it is not on PATH).
fn this_program() -> String {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| dir.join("ftx").canonicalize().ok())
            .any(|found| Some(found) == me)
    });
    match me {
        Some(_) if on_path => "ftx".into(),
        Some(me) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let shown = me
                .strip_prefix(&cwd)
                .map_or(me.clone(), |rel| Path::new(".").join(rel));
            shown.display().to_string()
        }
        None => "ftx".into(),
    }
}

/// Uploads come in waves of `workers`: a pace per client that makes the waves fill the duration.
fn pace_for(config: &DemoConfig) -> u64 {
    let waves = config.clients.div_ceil(config.workers) as u64;
    let millis = u64::try_from(config.duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(100);
    (config.size.saturating_mul(waves).saturating_mul(1000) / millis).max(1)
}

/// What the demo does, a line each (broken to the terminal's width when shown).
fn introduction(
    config: &DemoConfig,
    total: u64,
    rate: u64,
    addr: &str,
    received: &Path,
) -> Vec<String> {
    let mut lines = vec![format!(
        "{} {} clients upload {} files ({}) at {}/s each to a server with {} workers on {addr}",
        style("ftx demo:").bold(),
        config.clients,
        config.clients,
        Bytes(total),
        Bytes(rate),
        config.workers,
    )];
    if config.clients > config.workers {
        lines.push(format!(
            "  {} of them wait for a free worker: the bounded pool at work",
            config.clients - config.workers
        ));
    }
    lines.push(format!(
        "  files go to {} (removed at the end)",
        received.display()
    ));
    lines
}

/// Creates `count` files of varied sizes around `size`, with content that differs in every byte position.
fn make_files(dir: &Path, count: usize, size: u64) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    fs::create_dir_all(dir)?;
    (0..count)
        .map(|i| {
            let base = NAMES[i % NAMES.len()];
            let name = if i < NAMES.len() {
                base.to_string()
            } else {
                let (stem, ext) = base.rsplit_once('.').unwrap_or((base, ""));
                format!("{stem}-{}.{ext}", i / NAMES.len() + 1)
            };
            // Between half and one and a half times `size`, spread over the files.
            let tenths = 5 + (i * 7) % 11;
            let len = size.saturating_mul(tenths as u64) / 10;
            let path = dir.join(name);
            let bytes = Noise::bytes(i as u64, usize::try_from(len).context("file size")?);
            fs::write(&path, bytes).with_context(|| format!("creating {}", path.display()))?;
            Ok((path, len))
        })
        .collect()
}

/// How many of the sources arrived in `received` under their own name with the same bytes.
fn verify(sources: &[(PathBuf, u64)], received: &Path) -> usize {
    sources
        .iter()
        .filter(|(path, _)| {
            let arrived = received.join(path.file_name().expect("demo files have names"));
            matches!((fs::read(path), fs::read(&arrived)), (Ok(a), Ok(b)) if a == b)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_have_varied_sizes_and_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let files = make_files(dir.path(), 10, 1000).unwrap();
        let mut names: Vec<_> = files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_owned())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10);
        assert!(files.iter().all(|(_, len)| (500..=1500).contains(len)));
        assert!(files.iter().any(|(_, len)| *len != files[0].1));
    }
}
