//! The server as a library: the listener, the intake that collects headers, and the bounded pool of workers that receive uploads.
//!
//! The intake ([`intake`]) accepts every connection at once and collects
//! headers from all of them with one poller; only complete uploads go through
//! a bounded crossbeam channel to a fixed number of workers, one upload each.
//! So a silent or slow client costs a descriptor and a few bytes, never a
//! worker. Workers report to the render thread over another channel and never
//! draw anything; what happened to each upload comes back from
//! [`Server::run`] as a [`Tally`].

mod batch;
mod copy;
pub mod hello;
mod intake;
mod min_rate;
mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use anyhow::Context;
use crossbeam_channel::Sender;
use mio::Waker;

use crate::config::ServeConfig;
use crate::drop_folder::DropFolder;
use crate::outcome::Tally;
use crate::progress::Event;
use crate::protocol::Header;

/// The backlog asked for where the system does not say its cap.
const DEFAULT_BACKLOG: i32 = 4096;

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    /// Where hellos are answered (PROTOCOL.md section 5), or why they are not.
    hello: Result<UdpSocket, String>,
    folder: DropFolder,
    config: Arc<ServeConfig>,
    shared: Arc<Shared>,
    limits: Limits,
}

/// What the system lets this server have.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections the kernel queues for `accept()`.
    pub backlog: i32,
    /// Descriptors this process may open (the soft limit, raised to the hard one).
    pub open_files: Option<u64>,
}

/// What the intake, the workers and a [`Stopper`] share.
#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    /// Connections being received, so that stopping can interrupt their reads.
    active: Mutex<HashMap<u64, Arc<TcpStream>>>,
    /// Connections open, by client address (for `--per-ip`).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Wakes the intake: a worker took an upload, or the server is stopping.
    waker: OnceLock<Arc<Waker>>,
    /// Ids for the files of batches, apart from connection ids.
    file_ids: AtomicU64,
    /// Workers receiving now (the hello says how many are free).
    busy: AtomicUsize,
    /// The intake holds complete uploads the pool had no room for: a worker that
    /// takes one must wake it. Otherwise nobody needs waking.
    uploads_waiting: AtomicBool,
}

/// A complete upload: its connection and its header, waiting for or held by a worker.
struct Arrival {
    id: u64,
    /// Shared with the list of active connections (no dup(2) per upload); closed when both let go.
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    header: Header,
}

impl Server {
    /// Opens the drop folder and binds the listener. A name that does not resolve,
    /// an address in use or a folder that cannot be made are errors here.
    pub fn bind(config: &ServeConfig) -> anyhow::Result<Server> {
        crate::sys::process::ignore_file_size_signal();
        let open_files = crate::sys::process::raise_open_files_limit();
        let addresses = config.listen.resolve()?;
        let listener = TcpListener::bind(&addresses[..]).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    ": another program (another ftx serve?) listens there; stop it, or choose another port: -l {}",
                    config.listen.port.saturating_add(1)
                ),
                std::io::ErrorKind::AddrNotAvailable => {
                    ": that is not an address of this machine; try -l 0.0.0.0 (every address)".into()
                }
                std::io::ErrorKind::PermissionDenied => {
                    ": ports under 1024 need root; choose a port over 1024, such as -l 12000".into()
                }
                _ => String::new(),
            };
            anyhow::anyhow!("cannot listen on {}: {e}{hint}", config.listen)
        })?;
        // std listens with a backlog of 128: a burst of clients would wait for
        // TCP retries. Listening again sets the backlog to the system's cap.
        let backlog = crate::sys::net::max_backlog().unwrap_or(DEFAULT_BACKLOG);
        if let Some(rate) = config.rate {
            // Paced (`--rate`): a small receive window, inherited by every connection,
            // keeps clients from sending far ahead of what is taken, so their progress stays true.
            let window = crate::pace::Pace::new(rate).chunk().max(4096);
            let _ = socket2::SockRef::from(&listener).set_recv_buffer_size(window);
        }
        socket2::SockRef::from(&listener)
            .listen(backlog)
            .context("setting the listen backlog")?;
        // Made only once the port is ours: a start that fails leaves nothing on disk.
        let folder = DropFolder::open(&config.dir)?;
        let bound = listener.local_addr().context("the listener's address")?;
        let hello = match config.hello {
            true => hello::bind(bound).map_err(|e| format!("UDP port {}: {e}", bound.port())),
            false => Err("--no-hello".to_string()),
        };
        Ok(Server {
            listener,
            hello,
            folder,
            config: Arc::new(config.clone()),
            shared: Arc::new(Shared {
                // Far above any connection id, so that the two never meet.
                file_ids: AtomicU64::new(1 << 48),
                ..Shared::default()
            }),
            limits: Limits {
                backlog,
                open_files,
            },
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

    /// The UDP address hellos are answered on, or why there is none.
    pub fn hello(&self) -> Result<SocketAddr, String> {
        match &self.hello {
            Ok(socket) => socket.local_addr().map_err(|e| e.to_string()),
            Err(why) => Err(why.clone()),
        }
    }

    /// What the system allows: backlog and open files.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepts and receives uploads until stopped, reporting to `events`; returns what came of them.
    pub fn run(self, events: &Sender<Event>) -> Tally {
        let (intake, waker) = match intake::Intake::new(
            &self.listener,
            &self.shared,
            events,
            self.config.header_timeout,
            self.config.per_ip,
        ) {
            Ok(intake) => intake,
            Err(e) => {
                let _ = events.send(Event::Notice(format!("ftx: cannot watch connections: {e}")));
                return Tally::default();
            }
        };
        let _ = self.shared.waker.set(Arc::clone(&waker));
        // A stop that came before the waker existed is seen by the intake's first check.
        let (queue, jobs) = crossbeam_channel::bounded::<Arrival>(self.config.workers);
        let unfinished = Arc::new(batch::unfinished::Unfinished::default());
        let workers: Vec<_> = (0..self.config.workers)
            .map(|n| {
                let (jobs, waker) = (jobs.clone(), Arc::clone(&waker));
                let shared = Arc::clone(&self.shared);
                let mut worker = worker::Worker::new(
                    Arc::clone(&self.config),
                    self.folder.clone(),
                    events.clone(),
                    Arc::clone(&unfinished),
                );
                thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        let mut tally = Tally::default();
                        for upload in &jobs {
                            // Room in the channel: the intake may hand on the next upload.
                            if shared.uploads_waiting.load(Ordering::SeqCst) {
                                let _ = waker.wake();
                            }
                            shared.work_on(&upload, &mut worker, &mut tally);
                        }
                        tally
                    })
                    .expect("spawn worker thread")
            })
            .collect();
        drop(jobs);
        let hellos = self.hello.as_ref().ok().map(|socket| {
            let said = crate::protocol::hello::Said {
                ftx: 1,
                batch: crate::protocol::batch::VERSION,
                name: self.config.name.clone(),
                port: self.local_addr().port(),
                workers: self.config.workers,
                free: self.config.workers,
                id: hello::run_id(),
            };
            let (socket, shared) = (socket.try_clone(), Arc::clone(&self.shared));
            let traced = self.config.trace.then(|| events.clone());
            thread::Builder::new()
                .name("hello".into())
                .spawn(move || {
                    if let Ok(socket) = socket {
                        hello::answer(&socket, said, &shared, |text| {
                            if let Some(events) = &traced {
                                let _ = events.send(Event::Trace { id: 0, text });
                            }
                        });
                    }
                })
                .expect("spawn hello thread")
        });

        let mut tally = intake.run(&queue);
        drop(queue);
        for worker in workers {
            tally.add(worker.join().expect("worker thread"));
        }
        if let Some(hellos) = hellos {
            let _ = hellos.join();
        }
        tally
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// One upload, from a worker's turn to its outcome.
    fn work_on(&self, upload: &Arrival, worker: &mut worker::Worker, tally: &mut Tally) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.receive(upload, worker, tally);
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    fn receive(&self, upload: &Arrival, worker: &mut worker::Worker, tally: &mut Tally) {
        self.active
            .lock()
            .expect("active lock")
            .insert(upload.id, Arc::clone(&upload.stream));
        // Checked after registering, so a stop either sees this connection or is seen here.
        if crate::protocol::batch::is_batch(upload.header.size) && !self.stopping() {
            tally.add(batch::receive(worker, upload, &self.file_ids, &|| {
                self.stopping()
            }));
            self.active.lock().expect("active lock").remove(&upload.id);
            self.leave(upload.peer.ip());
            let _ = worker.events.send(Event::Closed { id: upload.id });
            return;
        }
        let result = if self.stopping() {
            Err("server stopped before this upload's turn".to_string())
        } else {
            worker.receive(upload, &|| self.stopping())
        };
        self.active.lock().expect("active lock").remove(&upload.id);
        self.leave(upload.peer.ip());
        tally.count(&result);
        worker.report(upload.id, result);
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
        if let Some(waker) = self.shared.waker.get() {
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use std::io::{Read, Write};

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
        let receipt: serde_json::Value =
            serde_json::from_str(receipt.strip_prefix("ftx/1 ").expect("a receipt")).unwrap();
        assert_eq!(receipt["status"], "saved");
        assert_eq!(receipt["saved_as"], "hello.txt");
        assert_eq!(receipt["size"], 5);
        assert_eq!(receipt["batch"], 1);
        assert_eq!(receipt["claim"].as_str().map(str::len), Some(32));

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
        assert_eq!(
            std::fs::read(dir.path().join("hello.txt")).unwrap(),
            b"hello"
        );
    }
}
