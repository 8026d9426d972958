//! A loopback TCP proxy that holds every byte back a fixed time in each direction, the TCP handshake's round trip included, and relays datagrams on the UDP port of the same number the same way (the hello): a LAN-like round trip for the benchmarks, on this machine alone.
//!
//! The kernel completes a connection to the proxy at once; on a real link
//! `connect` returns one round trip after the SYN. So nothing a client sends
//! is passed on before a round trip has gone by since the connection was
//! accepted, as if the handshake had taken it: a client that writes at once
//! (`nc`) and one that first waits for a datagram's answer (ftx's hello,
//! asked beside the SYN) are then held back alike. The proxy also notes when
//! the first connection was accepted (its SYN) and when it last passed
//! anything back to a client: the span a protocol's round trips are counted in.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Listens on 127.0.0.1; each connection is forwarded to `target`, every
/// chunk delivered `delay` after it was read, in order, both ways. A close
/// is passed on with the same delay. Stops accepting when dropped.
pub struct DelayProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    clock: Arc<Clock>,
}

/// The first connection's SYN and the last byte (or close) back to a client.
#[derive(Default)]
struct Clock {
    first_syn: std::sync::Mutex<Option<Instant>>,
    last_back: std::sync::Mutex<Option<Instant>>,
}

impl DelayProxy {
    pub fn start(target: SocketAddr, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(Clock::default());
        // Where the port's number is free on UDP too, datagrams go the same way.
        if let Ok(udp) = UdpSocket::bind(addr) {
            relay(udp, target, delay, Arc::clone(&stop));
        }
        let (stopping, noted) = (Arc::clone(&stop), Arc::clone(&clock));
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let syn = Instant::now();
                noted.first_syn.lock().unwrap().get_or_insert(syn);
                // The handshake's round trip: nothing goes on before it is over.
                let open = syn + 2 * delay;
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for s in [&client, &server] {
                    let _ = s.set_nodelay(true);
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(client, server, delay, open, None);
                pipe(s2, c2, delay, open, Some(Arc::clone(&noted)));
            }
        });
        DelayProxy { addr, stop, clock }
    }

    /// From the first connection's SYN to the last byte passed back to a
    /// client, since the last [`DelayProxy::reset`]: `None` before both.
    pub fn span(&self) -> Option<Duration> {
        let first = (*self.clock.first_syn.lock().unwrap())?;
        let last = (*self.clock.last_back.lock().unwrap())?;
        Some(last.saturating_duration_since(first))
    }

    /// Forgets the first SYN and the last byte back, for the next round.
    pub fn reset(&self) {
        *self.clock.first_syn.lock().unwrap() = None;
        *self.clock.last_back.lock().unwrap() = None;
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Datagrams from a client go to `target`'s UDP port, and the target's to the
/// last client that sent one, each `delay` later.
fn relay(socket: UdpSocket, target: SocketAddr, delay: Duration, stop: Arc<AtomicBool>) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    thread::spawn(move || {
        let mut client: Option<SocketAddr> = None;
        let mut datagram = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = socket.recv_from(&mut datagram) else {
                continue;
            };
            let to = if from == target {
                match client {
                    Some(client) => client,
                    None => continue,
                }
            } else {
                client = Some(from);
                target
            };
            let (bytes, socket) = (datagram[..n].to_vec(), socket.try_clone().unwrap());
            thread::spawn(move || {
                thread::sleep(delay);
                let _ = socket.send_to(&bytes, to);
            });
        }
    });
}

/// One direction: a reader stamps each chunk, a writer sends it once it is
/// due (`delay` after it came, or after `open`, whichever is later), noting
/// on `back` when it passed something to the client.
fn pipe(
    mut from: TcpStream,
    to: TcpStream,
    delay: Duration,
    open: Instant,
    back: Option<Arc<Clock>>,
) {
    let due = move || Instant::now().max(open) + delay;
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Option<Vec<u8>>)>();
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = tx.send((due(), None));
                    return;
                }
                Ok(n) => {
                    if tx.send((due(), Some(buffer[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            let passed = |back: &Option<Arc<Clock>>| {
                if let Some(clock) = back {
                    *clock.last_back.lock().unwrap() = Some(Instant::now());
                }
            };
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).is_err() {
                        let _ = to.shutdown(Shutdown::Both);
                        return;
                    }
                    passed(&back);
                }
                None => {
                    let _ = to.shutdown(Shutdown::Write);
                    passed(&back);
                    return;
                }
            }
        }
    });
}
