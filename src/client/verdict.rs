//! After the last content byte: the server's receipt, a clean close after every byte was taken, or a failure. Never a guess.
//!
//! The classic protocol has no acknowledgement. What a sender can still know:
//! a server that stops reading early and closes resets the connection (its
//! kernel answers unread or late data with a reset), and a clean close after
//! every byte was acknowledged means it read them all before closing. An ftx
//! server says more: its receipt names the file it saved.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;

use super::Learned;
use std::time::{Duration, Instant};

use super::upload::in_words;
use crate::names;
use crate::outcome::Kept;
use crate::protocol::is_timeout;
use crate::protocol::receipt::{self, Receipt};
use crate::sys::net::unacknowledged;
use crate::term::human_duration;

/// Most bytes read after the content before giving up on a server that keeps talking.
const MAX_AFTER_CONTENT: usize = 1024 * 1024;

/// Closes the sending side and waits, within `timeout` per wait, for the server's word.
pub(super) fn after_content(
    stream: &TcpStream,
    size: u64,
    timeout: Duration,
    learned: &Learned,
) -> Result<Kept, String> {
    // Fails only when the connection is already gone: the server reset it,
    // maybe after saying why (its failure receipt may still wait to be read).
    if stream.shutdown(Shutdown::Write).is_err() {
        return Err(failure_said(&already_sent(stream)).unwrap_or_else(|| {
            "the server reset the connection before it took the last bytes: it did not take the whole file".to_string()
        }));
    }
    let said = read_to_close(stream, timeout)?;
    match Receipt::decode(&said) {
        Some(Ok(Receipt::Saved {
            saved_as,
            size: kept,
            batch,
            claim,
        })) => {
            learned.ftx.store(true, Ordering::Relaxed);
            if claim.is_some() {
                *learned.claim.lock().expect("claim lock") = claim;
            }
            learned.batch.store(batch.unwrap_or(0), Ordering::Relaxed);
            if kept != size {
                return Err(format!(
                    "the server saved {kept} bytes, not the {size} sent"
                ));
            }
            Ok(Kept::Saved {
                saved_as: Some(names::escape_for_terminal(saved_as.as_bytes())),
            })
        }
        Some(Ok(Receipt::Failed { reason })) => Err(format!(
            "the server could not keep it: {}",
            names::escape_for_terminal(reason.as_bytes())
        )),
        Some(Err(e)) => Err(e),
        None => {
            all_acknowledged(stream, timeout)?;
            if learned.ftx.load(Ordering::Relaxed) {
                return Err(
                    "the server closed without a receipt, so it did not confirm the file".into(),
                );
            }
            Ok(Kept::Delivered {
                said: (!said.is_empty()).then(|| names::escape_for_terminal(said.trim_ascii())),
            })
        }
    }
}

/// Everything the server sends until it closes (the first [`receipt::MAX_LEN`] bytes of it).
fn read_to_close(mut stream: &TcpStream, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut said = Vec::new();
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(said),
            Ok(n) => {
                total += n;
                let room = receipt::MAX_LEN.saturating_sub(said.len());
                said.extend_from_slice(&buf[..n.min(room)]);
                if total > MAX_AFTER_CONTENT {
                    return Err(
                        "the server keeps sending after the content instead of closing".into(),
                    );
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Err(format!(
                "the server did not close the connection within {} of the last byte, so it is not \
                     known to have the file (check the server, or wait longer with --timeout)",
                human_duration(timeout)
            ))
            }
            Err(e) => {
                // An ftx server that failed says why before it resets.
                return Err(failure_said(&said).unwrap_or_else(|| {
                    format!(
                        "{} after the last byte: it did not take the whole file",
                        in_words(&e, timeout)
                    )
                }));
            }
        }
    }
}

/// What an ftx server's failure receipt in `said` says, in words.
fn failure_said(said: &[u8]) -> Option<String> {
    match Receipt::decode(said) {
        Some(Ok(Receipt::Failed { reason })) => Some(format!(
            "the server could not keep it: {}",
            names::escape_for_terminal(reason.as_bytes())
        )),
        _ => None,
    }
}

/// What the server sent that is already here, without waiting for more.
fn already_sent(mut stream: &TcpStream) -> Vec<u8> {
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    if stream.set_nonblocking(true).is_err() {
        return said;
    }
    while said.len() < receipt::MAX_LEN {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
        }
    }
    said
}

/// Waits until the server's side has acknowledged every byte sent (and the
/// close). A server that closed before reading everything answers the rest
/// with a reset instead, which shows up here as an error.
fn all_acknowledged(stream: &TcpStream, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Ok(Some(e)) = stream.take_error() {
            return Err(format!(
                "{} after the last byte: it did not take the whole file",
                in_words(&e, timeout)
            ));
        }
        match unacknowledged(stream) {
            Some(0) | None => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(format!(
                "the server closed the connection but did not acknowledge the last bytes within {}",
                human_duration(timeout)
            ))
            }
            Some(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// A connection whose server end has taken nothing: every byte the client
    /// could write is still queued, most of it unacknowledged (the window is full).
    fn stuffed() -> (TcpStream, TcpStream, u64) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0u64;
        while let Ok(n) = client.write(&chunk) {
            sent += n as u64;
        }
        client.set_nonblocking(false).unwrap();
        (client, server, sent)
    }

    /// Where the OS layer cannot tell unacknowledged bytes (the portable
    /// layer off macOS), a clean close is all there is to go on: "delivered",
    /// the weaker word, as README's Platforms section says.
    #[test]
    fn a_clean_close_with_bytes_not_taken_is_not_delivered() {
        let (client, server, sent) = stuffed();
        // The server's side closes cleanly (FIN) without reading: the client reads
        // the end of the stream at once, but its last bytes were never acknowledged.
        server.shutdown(Shutdown::Write).unwrap();
        let seen = Learned::default();
        let kept = after_content(&client, sent, Duration::from_millis(300), &seen);
        if unacknowledged(&client).is_none() {
            assert_eq!(kept, Ok(Kept::Delivered { said: None }));
            return;
        }
        let err = kept.unwrap_err();
        assert!(
            err.contains("did not acknowledge the last bytes within 0.30s"),
            "{err}"
        );
        // Once it closes for good, the unread bytes make it reset the connection.
        drop(server);
        let err = all_acknowledged(&client, Duration::from_secs(5)).unwrap_err();
        assert!(err.contains("the server reset the connection"), "{err}");
    }

    #[test]
    fn a_clean_close_after_every_byte_is_delivered() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        (&client).write_all(b"content").unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got
        });
        let seen = Learned::default();
        let kept = after_content(&client, 7, Duration::from_secs(5), &seen).unwrap();
        assert_eq!(kept, Kept::Delivered { said: None });
        assert_eq!(reader.join().unwrap(), b"content");
    }
}
