//! `ftx demo`: a server and several paced clients on loopback, in a temporary folder, verified and cleaned up; the classroom show in one command.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use console::style;
use indicatif::HumanBytes;

use crate::client;
use crate::config::{Address, SendConfig, ServeConfig};
use crate::exit_codes::ExitCode;
use crate::progress::{self, Event, Output, Side};
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

/// Settings for `ftx demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub clients: usize,
    pub workers: usize,
    pub size: u64,
    pub duration: Duration,
    pub output: Output,
}

/// Runs the demo; exit code 0 only if every file arrived byte-identical.
pub fn demo(config: DemoConfig) -> anyhow::Result<ExitCode> {
    let temp = tempfile::Builder::new()
        .prefix("ftx-demo-")
        .tempdir()
        .context("creating a temporary folder")?;
    let sources = make_files(&temp.path().join("to-send"), config.clients, config.size)?;
    let received = temp.path().join("received");

    let serve = ServeConfig {
        listen: Address::parse("127.0.0.1:0", "127.0.0.1")?,
        dir: received.clone(),
        workers: config.workers,
        idle_timeout: Duration::from_secs(30),
        max_size: None,
        per_ip: None,
        splice: true,
        trace: false,
        rate: None,
        output: config.output,
    };
    let server = Server::bind(&serve)?;
    let addr = server.local_addr();
    let total: u64 = sources.iter().map(|(_, len)| len).sum();
    // Uploads come in waves of `workers`; pace them so the waves fill the duration.
    let waves = config.clients.div_ceil(config.workers) as f64;
    let rate = ((config.size as f64 * waves) / config.duration.as_secs_f64().max(0.1)) as u64;
    if config.output.is_human() {
        crate::say!(
            "{} {} clients upload {} files ({}) at {}/s each to a server with {} workers on {addr}",
            style("ftx demo:").bold(),
            config.clients,
            config.clients,
            HumanBytes(total),
            HumanBytes(rate),
            config.workers,
        );
        if config.clients > config.workers {
            crate::say!(
                "  {} of them wait for a free worker: the bounded pool at work",
                config.clients - config.workers
            );
        }
        crate::say!("  files go to {} (removed at the end)", received.display());
    }

    let stopper = server.stopper();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (stopper, interrupted) = (stopper.clone(), Arc::clone(&interrupted));
        ctrlc::set_handler(move || {
            interrupted.store(true, Ordering::SeqCst);
            stopper.stop();
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let (events, render) = progress::spawn(Side::Serve, config.output, None);
    let _ = events.send(Event::Listening {
        address: addr,
        dir: received.display().to_string(),
        workers: config.workers,
    });
    let server_thread = thread::spawn(move || server.run(events));

    let started = Instant::now();
    let send = SendConfig {
        to: Address::parse(&addr.to_string(), "127.0.0.1")?,
        jobs: config.clients,
        output: Output::Quiet,
        files: sources.iter().map(|(path, _)| path.clone()).collect(),
        sendfile: true,
        trace: false,
        rate: Some(rate.max(1)),
    };
    let (client_events, clients) = progress::spawn(Side::Send, Output::Quiet, None);
    client::upload_all(&send, &client_events);
    drop(client_events);
    let sent = clients.join().expect("client tally");
    let elapsed = started.elapsed();
    stopper.stop();
    let _ = server_thread.join();
    let saved = render.join().expect("render thread");

    let verified = verify(&sources, &received);
    let all_good = verified == sources.len() && sent.failed == 0 && saved.failed == 0;
    if config.output.is_human() {
        let mark = if all_good {
            style("✓").green().bold()
        } else {
            style("✗").red().bold()
        };
        crate::say!(
            "{mark} {verified} of {} files arrived byte-identical: {} in {} ({}/s in all); {} saved, {} failed on the server",
            sources.len(),
            HumanBytes(sent.bytes),
            progress::seconds(elapsed),
            HumanBytes((sent.bytes as f64 / elapsed.as_secs_f64().max(1e-6)) as u64),
            saved.done,
            saved.failed,
        );
        if interrupted.load(Ordering::SeqCst) {
            crate::say!("ftx demo: interrupted");
        }
        crate::say!("  the temporary folder is removed; try it for real with: ftx serve   and   ftx send FILE...");
    } else if config.output == Output::Json {
        progress::emit_summary(saved, elapsed);
    }
    Ok(if all_good {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
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
            let factor = 0.5 + ((i * 7) % 11) as f64 / 10.0;
            let len = (size as f64 * factor) as u64;
            let path = dir.join(name);
            fs::write(&path, content(len, i as u64))
                .with_context(|| format!("creating {}", path.display()))?;
            Ok((path, len))
        })
        .collect()
}

/// Pseudo-random bytes (xorshift), different for every seed.
fn content(len: u64, seed: u64) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1D ^ (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut bytes = Vec::with_capacity(len as usize + 8);
    while (bytes.len() as u64) < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len as usize);
    bytes
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
        assert_ne!(content(64, 1), content(64, 2));
    }
}
