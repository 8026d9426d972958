//! The server as a library: the listener, the accept loop, and the bounded pool of workers that receive uploads.
//!
//! The accept loop hands each connection to a bounded crossbeam channel; a
//! fixed number of workers take connections from it, one upload each. When
//! every worker is busy and the channel is full, the loop stops accepting and
//! new clients wait in the kernel's backlog: that is the backpressure. Workers
//! report to the render thread over another channel and never draw anything;
//! what happened to each upload comes back from [`Server::run`] as a [`Tally`].

mod copy;
mod worker;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;

use crate::config::ServeConfig;
use crate::drop_folder::DropFolder;
use crate::outcome::Tally;
use crate::progress::Event;
use crate::protocol::REFUSED;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The same accept error is logged at most this often, so a long outage is one line a few seconds apart.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    folder: DropFolder,
    config: Arc<ServeConfig>,
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
    /// Opens the drop folder and binds the listener. A name that does not resolve,
    /// an address in use or a folder that cannot be made are errors here.
    pub fn bind(config: &ServeConfig) -> anyhow::Result<Server> {
        // With a file-size limit (ulimit -f) in force, a large upload must fail on its own, not kill the process.
        // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours in a handler.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let folder = DropFolder::open(&config.dir)?;
        let addresses = config.listen.resolve()?;
        let listener = TcpListener::bind(&addresses[..])
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local = listener.local_addr()?;
        let wake_ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Ok(Server {
            listener,
            folder,
            config: Arc::new(config.clone()),
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

    /// Accepts and receives uploads until stopped, reporting to `events`; returns what came of them.
    pub fn run(self, events: &Sender<Event>) -> Tally {
        let (queue, jobs) = crossbeam_channel::bounded::<Connection>(self.config.workers);
        let workers: Vec<_> = (0..self.config.workers)
            .map(|n| {
                let jobs = jobs.clone();
                let shared = Arc::clone(&self.shared);
                let mut worker = worker::Worker::new(
                    Arc::clone(&self.config),
                    self.folder.clone(),
                    events.clone(),
                );
                thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        let mut tally = Tally::default();
                        for conn in &jobs {
                            shared.work_on(&conn, &mut worker, &mut tally);
                        }
                        tally
                    })
                    .expect("spawn worker thread")
            })
            .collect();
        drop(jobs);

        let turned_away = self.accept_loop(&queue, events);
        drop(queue);
        let mut tally = turned_away;
        for worker in workers {
            tally.add(worker.join().expect("worker thread"));
        }
        tally
    }

    /// Accepts until stopped; returns the tally of connections turned away at the door.
    fn accept_loop(&self, queue: &Sender<Connection>, events: &Sender<Event>) -> Tally {
        let mut tally = Tally::default();
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
                        path: None,
                    });
                    if !self.shared.enter(peer.ip(), self.config.per_ip) {
                        let reason = refuse_busy_address(&stream, peer);
                        tally.count::<()>(&Err(()));
                        let _ = events.send(Event::Failed { id, reason });
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
        tally
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// One connection, from a worker's turn to its outcome.
    fn work_on(&self, conn: &Connection, worker: &mut worker::Worker, tally: &mut Tally) {
        self.active
            .lock()
            .expect("active lock")
            .insert(conn.id, Arc::clone(&conn.stream));
        // Checked after registering, so a stop either sees this connection or is seen here.
        let result = if self.stopping() {
            Err("server stopped before this upload's turn".to_string())
        } else {
            worker.receive(conn.id, &conn.stream, conn.peer, &|| self.stopping())
        };
        self.active.lock().expect("active lock").remove(&conn.id);
        self.leave(conn.peer.ip());
        tally.count(&result);
        worker.report(conn.id, result);
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
fn refuse_busy_address(stream: &TcpStream, peer: SocketAddr) -> String {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream)
        .write_all(format!("{REFUSED}too many connections from {}", peer.ip()).as_bytes());
    "refused: too many connections from this address".into()
}

/// Stops a running server: no new connections; uploads in flight are cancelled,
/// their partial files removed and their clients reset, so that no sender takes
/// a cancelled upload for a finished one.
#[derive(Debug, Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for stream in self.shared.active.lock().expect("active lock").values() {
            // Shutting down only the reading side wakes the worker's read and
            // sends nothing: the client must see a reset, never a clean close.
            let _ = stream.shutdown(Shutdown::Read);
        }
        // The accept loop is blocked in accept(): one connection wakes it.
        let _ = TcpStream::connect_timeout(&self.shared.wake, Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use std::io::Read;

    /// The server in-process on port 0: one upload saved with its receipt, one
    /// refused, and the tally comes back from `run`, not from anything drawn.
    #[test]
    fn run_returns_the_tally_of_what_it_received() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::bind(&ServeConfig {
            listen: Address::parse("127.0.0.1:0", "127.0.0.1").unwrap(),
            dir: dir.path().to_path_buf(),
            workers: 2,
            max_size: Some(100),
            ..ServeConfig::default()
        })
        .unwrap();
        let addr = server.local_addr();
        let stopper = server.stopper();
        let (events, _) = crossbeam_channel::unbounded();
        let running = thread::spawn(move || server.run(&events));

        let mut ok = TcpStream::connect(addr).unwrap();
        ok.write_all(b"\0\0\0\0\0\0\0\x05hello.txt").unwrap();
        let mut reply = [0u8; 8];
        ok.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"go ahead");
        ok.write_all(b"hello").unwrap();
        ok.shutdown(Shutdown::Write).unwrap();
        let mut receipt = String::new();
        ok.read_to_string(&mut receipt).unwrap();
        assert_eq!(
            receipt,
            "ftx/1 {\"status\":\"saved\",\"saved_as\":\"hello.txt\",\"size\":5}\n"
        );

        let mut big = TcpStream::connect(addr).unwrap();
        big.write_all(b"\0\0\0\0\0\0\x10\0big.bin").unwrap();
        let mut refusal = String::new();
        big.read_to_string(&mut refusal).unwrap();
        assert!(refusal.starts_with("refused: too large"), "{refusal}");

        stopper.stop();
        let tally = running.join().unwrap();
        assert_eq!(
            tally,
            Tally {
                saved: 1,
                delivered: 0,
                failed: 1,
                bytes: 5
            }
        );
        assert_eq!(std::fs::read(dir.path().join("hello.txt")).unwrap(), b"hello");
    }
}
