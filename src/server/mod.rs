//! `ftx serve`: the listener, the accept loop, and the bounded pool of workers that receive uploads.
//!
//! The accept loop hands each connection to a bounded crossbeam channel; a
//! fixed number of workers take connections from it, one upload each. When
//! every worker is busy and the channel is full, the loop stops accepting and
//! new clients wait in the kernel's backlog: that is the backpressure. Workers
//! report to the render thread over another channel and never draw anything.

mod banner;
mod copy;
mod session;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;

use crate::config::ServeConfig;
use crate::drop_folder::DropFolder;
use crate::exit_codes::ExitCode;
use crate::progress::{self, Event, Side};
use crate::protocol::REFUSED;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The same accept error is logged at most this often, so a long outage is one line a few seconds apart.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    folder: DropFolder,
    workers: usize,
    idle_timeout: Duration,
    max_size: Option<u64>,
    per_ip: Option<usize>,
    splice: bool,
    trace: bool,
    rate: Option<u64>,
    shared: Arc<Shared>,
}

/// What the accept loop, the workers and a [`Stopper`] share.
#[derive(Debug)]
struct Shared {
    stopping: AtomicBool,
    /// Connections being received, so that stopping can interrupt their reads.
    active: Mutex<HashMap<u64, Arc<TcpStream>>>,
    /// Connections waiting or being received, by client address (for `--per-ip`).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Where to connect to wake the accept loop.
    wake: SocketAddr,
}

/// An accepted connection waiting for, or held by, a worker.
struct Connection {
    id: u64,
    /// Shared with the list of active connections (no dup(2) per upload); closed when both let go.
    stream: Arc<TcpStream>,
    peer: SocketAddr,
}

impl Server {
    /// Binds the listener and opens the drop folder.
    pub fn bind(config: &ServeConfig) -> anyhow::Result<Server> {
        let folder = DropFolder::open(&config.dir)?;
        let listener = TcpListener::bind(&config.listen.resolved[..])
            .with_context(|| format!("cannot listen on {}", config.listen.text))?;
        let local = listener.local_addr()?;
        let wake_ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Ok(Server {
            listener,
            folder,
            workers: config.workers,
            idle_timeout: config.idle_timeout,
            max_size: config.max_size,
            per_ip: config.per_ip,
            splice: config.splice,
            trace: config.trace,
            rate: config.rate,
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                active: Mutex::default(),
                per_ip: Mutex::default(),
                wake: SocketAddr::new(wake_ip, local.port()),
            }),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The drop folder files are saved into.
    pub fn folder(&self) -> &DropFolder {
        &self.folder
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepts and receives uploads until stopped; reports everything to `events`.
    pub fn run(self, events: Sender<Event>) {
        let (queue, jobs) = crossbeam_channel::bounded::<Connection>(self.workers);
        let workers: Vec<_> = (0..self.workers)
            .map(|n| {
                let jobs = jobs.clone();
                let events = events.clone();
                let receiver = session::Receiver {
                    folder: self.folder.clone(),
                    idle_timeout: self.idle_timeout,
                    max_size: self.max_size,
                    trace: self.trace,
                    rate: self.rate,
                    events: events.clone(),
                };
                let shared = Arc::clone(&self.shared);
                let splice = self.splice;
                thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        let mut copier = copy::Copier::new(splice);
                        for conn in jobs.iter() {
                            shared.work_on(conn, &receiver, &mut copier);
                        }
                    })
                    .expect("spawn worker thread")
            })
            .collect();
        drop(jobs);

        let mut next_id = 1;
        let mut last_error: Option<(String, Instant)> = None;
        loop {
            let accepted = self.listener.accept();
            if self.shared.stopping() {
                break;
            }
            match accepted {
                Ok((stream, peer)) => {
                    let id = next_id;
                    next_id += 1;
                    let _ = events.send(Event::Waiting {
                        id,
                        peer: Some(peer),
                        name: None,
                    });
                    if !self.shared.enter(peer.ip(), self.per_ip) {
                        refuse_busy_address(stream, peer, id, &events);
                        continue;
                    }
                    // Blocks while every worker is busy and the queue is full.
                    let stream = Arc::new(stream);
                    if queue.send(Connection { id, stream, peer }).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: log it (once per burst), pause, go on.
                    let text = e.to_string();
                    let repeated = matches!(&last_error,
                        Some((last, at)) if *last == text && at.elapsed() < ACCEPT_LOG_EVERY);
                    if !repeated {
                        let notice = format!("ftx: accept failed: {text}; retrying");
                        let _ = events.send(Event::Notice(notice));
                        last_error = Some((text, Instant::now()));
                    }
                    thread::sleep(ACCEPT_RETRY);
                }
            }
        }
        drop(queue);
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn work_on(&self, conn: Connection, receiver: &session::Receiver, copier: &mut copy::Copier) {
        self.active
            .lock()
            .expect("active lock")
            .insert(conn.id, Arc::clone(&conn.stream));
        // Checked after registering, so a stop either sees this connection or is seen here.
        if self.stopping() {
            let _ = receiver.events.send(Event::Failed {
                id: conn.id,
                reason: "server stopped before this upload's turn".into(),
            });
        } else {
            receiver.receive(conn.id, &conn.stream, conn.peer, copier, &|| {
                self.stopping()
            });
        }
        self.active.lock().expect("active lock").remove(&conn.id);
        self.leave(conn.peer.ip());
    }

    /// Counts a new connection from `ip`; false if that address is at its cap.
    fn enter(&self, ip: IpAddr, cap: Option<usize>) -> bool {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        let count = per_ip.entry(ip).or_insert(0);
        if cap.is_some_and(|cap| *count >= cap) {
            return false;
        }
        *count += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// Turns away a connection from an address already at its `--per-ip` cap, without waiting on it.
fn refuse_busy_address(stream: TcpStream, peer: SocketAddr, id: u64, events: &Sender<Event>) {
    let _ = stream.set_nonblocking(true);
    let _ =
        (&stream).write_all(format!("{REFUSED}too many connections from {}", peer.ip()).as_bytes());
    let _ = events.send(Event::Failed {
        id,
        reason: "refused: too many connections from this address".into(),
    });
}

/// Stops a running server: no new connections, uploads in flight are cancelled
/// and their partial files removed.
#[derive(Debug, Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for stream in self.shared.active.lock().expect("active lock").values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // The accept loop is blocked in accept(): one connection wakes it.
        let _ = TcpStream::connect_timeout(&self.shared.wake, Duration::from_secs(1));
    }
}

/// Runs `ftx serve` until Ctrl-C or SIGTERM.
pub fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    // With a file-size limit (ulimit -f) in force, a large upload must fail on its own, not kill the server.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours in a handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let server = Server::bind(&config)?;
    if config.output.is_human() {
        banner::print(&server, &config);
    }

    let stopper = server.stopper();
    let folder = server.folder().clone();
    let (events, render) = progress::spawn(Side::Serve, config.output, None);
    let _ = events.send(Event::Listening {
        address: server.local_addr(),
        dir: server.folder().path().display().to_string(),
        workers: config.workers,
    });
    // The handler outlives the run; it must not keep the render thread's channel open.
    let notices = Arc::new(Mutex::new(Some(events.clone())));
    let handler_notices = Arc::clone(&notices);
    let signals = AtomicU64::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(notices) = handler_notices.lock().expect("notices lock").as_ref() {
                let _ = notices.send(Event::Notice(
                    "ftx: stopping: cancelling uploads in progress (Ctrl-C again to quit at once)"
                        .into(),
                ));
            }
            stopper.stop();
        } else {
            folder.remove_partials();
            crate::say!("\nftx: stopped at once; partial files removed");
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;

    let started = Instant::now();
    server.run(events);
    notices.lock().expect("notices lock").take();
    let tally = render.join().expect("render thread");
    if config.output == progress::Output::Json {
        progress::emit_summary(tally, started.elapsed());
    } else {
        crate::say!(
            "ftx: stopped after {}: {} saved, {} failed, {} received",
            progress::seconds(started.elapsed()),
            tally.done,
            tally.failed,
            indicatif::HumanBytes(tally.bytes)
        );
    }
    Ok(ExitCode::Success)
}
