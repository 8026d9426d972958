//! The intake: accepts every connection at once and collects headers from all of them with one poller, so that a connection without a complete header never holds a worker.
//!
//! The listener never stops being drained: a burst of thousands of clients is
//! accepted as fast as it arrives, whatever the workers are doing. Each
//! connection gets one deadline for its whole header (`--header-timeout`),
//! however it trickles. Complete uploads wait here, in arrival order, for a
//! free worker; the bounded channel to the pool takes one whenever a worker
//! takes one (workers wake the intake when they do).
//!
//! Connections are mio's non-blocking sockets while the intake holds them,
//! and become std's blocking ones as they are handed on (an accepted socket
//! inherits the listener's non-blocking mode on some systems, macOS among them).

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::{Arrival, Shared};
use crate::names;
use crate::outcome::Tally;
use crate::progress::Event;
use crate::protocol::{HeaderCollector, MAX_RECV_NAME, REFUSED};

/// The listener's token; connections use their id.
const LISTENER: Token = Token(usize::MAX);

/// The waker's token: a worker took an upload, or the server is stopping.
pub(super) const WAKER: Token = Token(usize::MAX - 1);

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The same accept error is logged at most this often, so a long outage is one line a few seconds apart.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// A connection whose header is still coming.
struct Incoming {
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    header: HeaderCollector,
}

/// What reading everything that has arrived on a connection came to.
enum Drained {
    /// The header is complete (whatever else happened after it).
    Complete,
    /// More is to come.
    Waiting,
    /// The connection is of no use: closed early, a name too long, an error.
    Failed(String),
}

/// Reads until nothing more has arrived (the poller only says when new bytes
/// come); the socket is non-blocking here, so these reads do not wait. While
/// the header may still be a batch opening, what has arrived is looked at
/// before it is read, and only the header's bytes are taken: a batch's
/// frames sent right behind its opening stay for its worker (B2a).
fn drain(pending: &mut Incoming) -> Drained {
    let mut chunk = [0u8; 4096];
    loop {
        if pending.header.opening_whole() {
            return Drained::Complete;
        }
        let looking = pending.header.may_be_opening();
        let got = match looking {
            true => pending.stream.peek(&mut chunk),
            false => io::Read::read(&mut &pending.stream, &mut chunk),
        };
        let arrived = match got {
            Ok(0) if pending.header.complete().is_some() => return Drained::Complete,
            Ok(0) => return Drained::Failed(pending.header.closed().to_string()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return if pending.header.complete().is_some() {
                    Drained::Complete
                } else {
                    Drained::Waiting
                };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Drained::Failed(format!("reading the header: {e}")),
        };
        let wanted = pending.header.wanted(&chunk[..arrived]);
        // What was looked at is there: this read takes it without waiting.
        if looking {
            if let Err(e) = io::Read::read_exact(&mut &pending.stream, &mut chunk[..wanted]) {
                return Drained::Failed(format!("reading the header: {e}"));
            }
        }
        if let Err(e) = pending.header.push(&chunk[..wanted]) {
            return Drained::Failed(e.to_string());
        }
    }
}

/// Everything between `accept()` and a worker.
pub(super) struct Intake<'a> {
    /// The server's listener (a second handle on it), non-blocking.
    listener: mio::net::TcpListener,
    poll: Poll,
    shared: &'a Shared,
    events: &'a Sender<Event>,
    header_timeout: Duration,
    per_ip: Option<usize>,
    next_id: u64,
    pending: HashMap<u64, Incoming>,
    /// (deadline, id) in accept order, so in deadline order too.
    deadlines: VecDeque<(Instant, u64)>,
    /// Complete uploads waiting for a worker, in arrival order.
    ready: VecDeque<Arrival>,
    /// After an accept error, when to try again.
    retry_accept: Option<Instant>,
    last_error: Option<(String, Instant)>,
    /// Connections turned away or dropped before a worker saw them.
    tally: Tally,
}

impl<'a> Intake<'a> {
    /// An intake for `listener`, with a waker that workers and the stopper use.
    pub fn new(
        listener: &'a TcpListener,
        shared: &'a Shared,
        events: &'a Sender<Event>,
        header_timeout: Duration,
        per_ip: Option<usize>,
    ) -> io::Result<(Intake<'a>, Arc<Waker>)> {
        let poll = Poll::new()?;
        let listener = listener.try_clone()?;
        listener.set_nonblocking(true)?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((
            Intake {
                listener,
                poll,
                shared,
                events,
                header_timeout,
                per_ip,
                next_id: 1,
                pending: HashMap::new(),
                deadlines: VecDeque::new(),
                ready: VecDeque::new(),
                retry_accept: None,
                last_error: None,
                tally: Tally::default(),
            },
            waker,
        ))
    }

    /// Runs until the server stops; hands complete uploads to `queue`. Returns
    /// the tally of connections that never reached a worker.
    pub fn run(mut self, queue: &Sender<Arrival>) -> Tally {
        let mut events = Events::with_capacity(1024);
        while !self.shared.stopping() {
            if let Err(e) = self.poll.poll(&mut events, self.next_wake()) {
                if e.kind() != ErrorKind::Interrupted {
                    self.notice(format!("ftx: waiting for connections failed: {e}"));
                    break;
                }
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(id) => self.read(id as u64),
                }
            }
            let now = Instant::now();
            if self.retry_accept.is_some_and(|at| at <= now) {
                self.retry_accept = None;
                self.accept_all();
            }
            self.expire(now);
            if !self.hand_off(queue) {
                break;
            }
        }
        self.stop();
        self.tally
    }

    /// How long the poller may sleep: until the next header deadline or accept retry.
    fn next_wake(&self) -> Option<Duration> {
        let now = Instant::now();
        let deadline = self.deadlines.front().map(|(at, _)| *at);
        [deadline, self.retry_accept]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    /// Accepts until the backlog is empty (the poller only says when new ones arrive).
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: log it (once per burst), try again shortly.
                    let text = e.to_string();
                    let repeated = matches!(&self.last_error,
                        Some((last, at)) if *last == text && at.elapsed() < ACCEPT_LOG_EVERY);
                    if !repeated {
                        self.notice(format!("ftx: accept failed: {text}; retrying"));
                        self.last_error = Some((text, Instant::now()));
                    }
                    self.retry_accept = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: mio::net::TcpStream, peer: SocketAddr) {
        let id = self.next_id;
        self.next_id += 1;
        let _ = self.events.send(Event::Connected { id, peer });
        if !self.shared.enter(peer.ip(), self.per_ip) {
            let refusal = format!("{REFUSED}too many connections from {}", peer.ip());
            let _ = std::io::Write::write_all(&mut &stream, refusal.as_bytes());
            self.fail(id, "refused: too many connections from this address".into());
            return;
        }
        let mut pending = Incoming {
            stream,
            peer,
            header: HeaderCollector::new(MAX_RECV_NAME),
        };
        // Most clients send their header at once: it is often here already.
        match drain(&mut pending) {
            Drained::Complete => return self.queue(id, pending),
            Drained::Failed(reason) => {
                self.shared.leave(peer.ip());
                return self.fail(id, reason);
            }
            Drained::Waiting => {}
        }
        let token = Token(usize::try_from(id).expect("ids fit a token"));
        let registered =
            self.poll
                .registry()
                .register(&mut pending.stream, token, Interest::READABLE);
        if let Err(e) = registered {
            self.shared.leave(peer.ip());
            self.fail(id, format!("cannot watch the connection: {e}"));
            return;
        }
        self.deadlines
            .push_back((Instant::now() + self.header_timeout, id));
        self.pending.insert(id, pending);
    }

    /// A complete upload joins the queue for a worker, on a blocking socket.
    fn queue(&mut self, id: u64, pending: Incoming) {
        let header = pending.header.complete().expect("complete header");
        let stream = TcpStream::from(pending.stream);
        if let Err(e) = stream.set_nonblocking(false) {
            self.shared.leave(pending.peer.ip());
            return self.fail(id, format!("cannot hand the connection on: {e}"));
        }
        let batch = crate::protocol::batch::is_batch(header.size);
        let name = if batch {
            "(a batch of files from ftx send)".to_string()
        } else {
            names::escape_for_terminal(&header.name)
        };
        let _ = self.events.send(Event::Queued {
            id,
            name,
            // A batch's opening has no size: its 8 bytes are the opening's magic.
            size: (!batch).then_some(header.size),
            path: None,
            peer: None,
        });
        self.ready.push_back(Arrival {
            id,
            stream: Arc::new(stream),
            peer: pending.peer,
            header,
        });
    }

    /// Reads what has arrived on a connection; hands it on once its header is complete.
    fn read(&mut self, id: u64) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        match drain(pending) {
            Drained::Waiting => {}
            Drained::Failed(reason) => self.drop_pending(id, reason),
            Drained::Complete => {
                let mut pending = self.pending.remove(&id).expect("pending connection");
                let _ = self.poll.registry().deregister(&mut pending.stream);
                self.queue(id, pending);
            }
        }
    }

    /// Drops connections whose header did not complete in time.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                return;
            }
            self.deadlines.pop_front();
            if self.pending.contains_key(&id) {
                let timeout = crate::term::human_duration(self.header_timeout);
                self.drop_pending(id, format!("no complete header within {timeout}"));
            }
        }
    }

    /// Gives waiting uploads to the pool while it has room; false once the pool is gone.
    fn hand_off(&mut self, queue: &Sender<Arrival>) -> bool {
        while let Some(upload) = self.ready.pop_front() {
            match queue.try_send(upload) {
                Ok(()) => {}
                Err(TrySendError::Full(upload)) => {
                    self.ready.push_front(upload);
                    // Said before trying once more, so that a worker that takes
                    // one in between either sees it and wakes us, or left room.
                    self.shared.uploads_waiting.store(true, Ordering::SeqCst);
                    match queue.try_send(self.ready.pop_front().expect("just put back")) {
                        Ok(()) => continue,
                        Err(TrySendError::Full(upload)) => {
                            self.ready.push_front(upload);
                            return true;
                        }
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        self.shared.uploads_waiting.store(false, Ordering::SeqCst);
        true
    }

    fn drop_pending(&mut self, id: u64, reason: String) {
        if let Some(mut pending) = self.pending.remove(&id) {
            let _ = self.poll.registry().deregister(&mut pending.stream);
            self.shared.leave(pending.peer.ip());
            self.fail(id, reason);
        }
    }

    fn fail(&mut self, id: u64, reason: String) {
        self.tally.count::<()>(&Err(()));
        let _ = self.events.send(Event::Failed { id, reason });
    }

    fn notice(&self, text: String) {
        let _ = self.events.send(Event::Notice(text));
    }

    /// The server is stopping: every connection still here is told nothing more and closed.
    fn stop(&mut self) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.drop_pending(id, "cancelled: the server is stopping".into());
        }
        for upload in std::mem::take(&mut self.ready) {
            self.shared.leave(upload.peer.ip());
            self.fail(upload.id, "server stopped before this upload's turn".into());
        }
    }
}
