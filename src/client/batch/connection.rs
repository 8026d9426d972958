//! One batch connection of the sender: opened (PROTOCOL.md B2), fed units by a writer while a reader takes the answers, and every file it took given an outcome, whatever happens.
//!
//! To a server known to be ftx (its hello or a receipt said so) the first
//! frames go right behind the opening, in the same round trip, and the
//! reader takes the welcome before the answers. A batch sent so and not
//! welcomed (a server busy with `--per-ip`, say) is sent again on a
//! connection that waits for the welcome first, as every batch does to a
//! server not known to be ftx; nothing of it was answered, so nothing of it
//! was kept.

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;

use crossbeam_channel::Receiver;

use super::plan::Unit;
use super::reader::InFlight;
use super::shown;
use crate::client::connect::{self, Opening};
use crate::client::upload::in_words;
use crate::client::{Context, Run};
use crate::names;
use crate::outcome::{Done, FileReport};
use crate::progress::Event;
use crate::protocol::batch::{self, Answer, Frame, Welcome};
use crate::protocol::{self, BadReply};

/// Why a pipelined batch was not welcomed.
enum Unwelcome {
    /// Refused, reset or closed: it can go again, after a welcome.
    Again(String),
    /// No welcome within `--timeout`.
    Failed(String),
}

/// One batch connection.
pub(super) struct Connection<'a> {
    pub(super) context: &'a Context<'a>,
    pub(super) run: &'a Run,
}

impl Connection<'_> {
    /// Takes units until there are none left, through one connection after
    /// another: a batch takes at most [`batch::MAX_TOPS`] (each may fill a
    /// top folder, and the server holds that many at most, B10).
    pub(super) fn serve(&self, work: &Receiver<Unit>) {
        while let Ok(first) = work.recv() {
            let units = std::iter::once(first).chain(work.iter().take(batch::MAX_TOPS - 1));
            if let Err(reason) = self.serve_batch(units) {
                // No batch opens: nor will the next.
                for unit in work {
                    self.fail_unit(&unit, &reason);
                }
            }
        }
    }

    /// One batch connection for `units`; why it did not open.
    fn serve_batch(&self, work: impl Iterator<Item = Unit>) -> Result<(), String> {
        let pipelined = self.context.learned.ftx.load(Ordering::Relaxed)
            && !self.context.reach.wait_for_welcome.load(Ordering::Relaxed);
        let opened = match pipelined {
            true => self.open_pipelined(),
            false => self.open(),
        };
        let stream = match opened {
            Ok(stream) => stream,
            Err(reason) => {
                for unit in work {
                    self.fail_unit(&unit, &reason);
                }
                return Err(reason);
            }
        };
        let in_flight = InFlight::default();
        let writing = AtomicBool::new(true);
        // What the reader made of the welcome; known from the start when it
        // was read before any frame went.
        let welcome: OnceLock<Result<(), Unwelcome>> = OnceLock::new();
        if !pipelined {
            let _ = welcome.set(Ok(()));
        }
        let mut broken: Option<String> = None;
        let mut taken = Vec::new();
        // A pipelined batch's units, to send again if it is not welcomed.
        let mut sent: Vec<Unit> = Vec::new();
        thread::scope(|scope| {
            scope.spawn(|| {
                if welcome.get().is_none() {
                    let _ = welcome.set(self.welcomed(&stream));
                }
                if welcome.get().is_some_and(Result::is_err) {
                    // Nothing was answered: the writer is stopped, and what
                    // it waits for let go, unreported (after the shutdown,
                    // so that nothing it asks later is waited for).
                    let _ = stream.shutdown(Shutdown::Both);
                    in_flight.let_go();
                    return;
                }
                self.read_answers(&stream, &in_flight, &writing)
            });
            for unit in work {
                // A write that failed before the welcome was read: whether the
                // batch goes again or its files fail is the welcome's to say
                // (the reader decides within --timeout).
                while broken.is_some() && welcome.get().is_none() {
                    thread::sleep(std::time::Duration::from_millis(1));
                }
                if welcome.get().is_some_and(Result::is_err) {
                    sent.push(unit);
                    continue;
                }
                if let Some(reason) = &broken {
                    self.fail_unit(&unit, reason);
                    continue;
                }
                taken.extend_from_slice(&unit.files);
                if pipelined {
                    sent.push(unit.clone());
                }
                if let Err(reason) = self.write_unit(&stream, &unit, &in_flight) {
                    broken = Some(reason);
                }
            }
            if broken.is_none() {
                let _ = (&stream).write_all(&batch::line(&Frame::End { end: true }));
            }
            let _ = stream.shutdown(Shutdown::Write);
            writing.store(false, Ordering::SeqCst);
        });
        match welcome.into_inner() {
            // Not welcomed: the same units on a connection that waits for the welcome.
            Some(Err(Unwelcome::Again(why))) => {
                self.trace(format!("{why}: the batch goes again, after the welcome"));
                self.context
                    .reach
                    .wait_for_welcome
                    .store(true, Ordering::Relaxed);
                return self.serve_batch(sent.into_iter());
            }
            Some(Err(Unwelcome::Failed(reason))) => {
                for unit in &sent {
                    self.fail_unit(unit, &reason);
                }
                return Err(reason);
            }
            Some(Ok(())) | None => {}
        }
        // Once the answers are all read: a file of a unit that broke off and
        // was never sent, or never answered, failed.
        let reason = broken.unwrap_or_else(|| "the batch ended before it was sent".into());
        for index in taken {
            // Only files never reached are left here, and the view has not heard of them.
            if self.context.so_far.reports.lock().expect("reports lock")[index].is_none() {
                self.queued(index);
            }
            self.finish(
                index,
                Err(format!("not sent: the batch broke off ({reason})")),
            );
        }
        Ok(())
    }

    /// Makes `top` on the server in a batch of its own and returns the token
    /// that lets other batches fill it (B5a); `None` if that did not work out
    /// (the folder then goes in one batch).
    pub(super) fn share_top(&self, top: &str, key: Option<&str>) -> Option<String> {
        let stream = self.open().ok()?;
        let frames = [
            batch::line(&Frame::Top {
                top: top.to_string(),
                join: None,
                key: key.map(str::to_string),
            }),
            batch::line(&Frame::End { end: true }),
        ]
        .concat();
        (&stream).write_all(&frames).ok()?;
        let mut reader = BufReader::new(&stream);
        let answer = batch::read_line(&mut reader).ok()??;
        let Answer::Top { token, .. } = batch::parse::<Answer>(&answer).ok()? else {
            return None;
        };
        // Its end, so that the server is done with it before the others join.
        let _ = batch::read_line(&mut reader);
        Some(token)
    }

    /// Says `text` under `--trace`.
    fn trace(&self, text: String) {
        if self.context.config.trace {
            let _ = self.context.events.send(Event::Notice(text));
        }
    }

    /// Connects and opens a batch (B2), asking again with pauses that double,
    /// for up to `--timeout`, while the server is busy (`--per-ip`).
    fn open(&self) -> Result<TcpStream, String> {
        connect::with_retry(
            self.context.config,
            |t| self.trace(t),
            || {
                let stream = self.send_opening()?;
                self.judged(batch::read_welcome(&mut &stream))?;
                Ok(stream)
            },
        )
    }

    /// Connects and sends the opening, for frames to follow at once: to a
    /// server known to be ftx (B2). The welcome is the reader's to take
    /// ([`Connection::welcomed`]).
    fn open_pipelined(&self) -> Result<TcpStream, String> {
        connect::with_retry(
            self.context.config,
            |t| self.trace(t),
            || self.send_opening(),
        )
    }

    /// The welcome of a pipelined opening: `Again` for a refusal, a reset or
    /// a close (the batch can be sent again, waiting for the welcome);
    /// `Failed` when none came within `--timeout`.
    fn welcomed(&self, stream: &TcpStream) -> Result<(), Unwelcome> {
        let welcome = batch::read_welcome(&mut &*stream);
        let timed_out = welcome.as_ref().is_err_and(protocol::is_timeout);
        match self.judged(welcome) {
            Ok(()) => Ok(()),
            Err(Opening::Failed(reason) | Opening::Busy(reason)) if timed_out => {
                Err(Unwelcome::Failed(reason))
            }
            Err(Opening::Failed(reason) | Opening::Busy(reason)) => Err(Unwelcome::Again(reason)),
        }
    }

    /// Connects and writes the opening (B2).
    fn send_opening(&self) -> Result<TcpStream, Opening> {
        let config = self.context.config;
        // A server found not to be ftx is not sent another opening (PROTOCOL.md B1a).
        if let Some(reason) = self.context.reach.unreachable.get() {
            return Err(Opening::Failed(reason.clone()));
        }
        let stream = connect::connect(config, self.context.addresses, &self.context.reach)
            .map_err(Opening::Failed)?;
        let _ = stream.set_nodelay(true);
        let set = |e: std::io::Error| Opening::Failed(e.to_string());
        stream
            .set_write_timeout(Some(config.timeout))
            .map_err(set)?;
        stream.set_read_timeout(Some(config.timeout)).map_err(set)?;
        (&stream).write_all(&batch::opening()).map_err(|e| {
            Opening::Failed(format!("opening a batch: {}", in_words(&e, config.timeout)))
        })?;
        Ok(stream)
    }

    /// What the server's answer to an opening means.
    fn judged(&self, welcome: std::io::Result<Welcome>) -> Result<(), Opening> {
        let config = self.context.config;
        match welcome {
            Ok(Welcome::Go) => Ok(()),
            Ok(Welcome::Classic) => {
                let reason = format!(
                    "{} is not an ftx server: it answered \"go ahead\" to the opening of ftx mode, \
                     taking it for a classic upload (it may keep a stray file); send without --ftx",
                    config.to
                );
                let _ = self.context.reach.unreachable.set(reason.clone());
                Err(Opening::Failed(reason))
            }
            Ok(Welcome::Other(got)) if got.starts_with(protocol::REFUSED.as_bytes()) => {
                let reason = format!("opening a batch: {}", BadReply { got: got.clone() });
                Err(Opening::refused(&got, reason))
            }
            Ok(Welcome::Other(got)) if got.is_empty() => Err(Opening::Failed(
                "opening a batch: the server closed the connection without answering".into(),
            )),
            Ok(Welcome::Other(got)) => Err(Opening::Failed(format!(
                "opening a batch: the server answered \"{}\", not ftx mode's welcome",
                names::escape_for_terminal(&got)
            ))),
            Err(e) => Err(Opening::Failed(format!(
                "opening a batch: no reply ({}): the server may be busy (wait longer with --timeout)",
                in_words(&e, config.timeout)
            ))),
        }
    }

    fn fail_unit(&self, unit: &Unit, reason: &str) {
        for &index in &unit.files {
            self.queued(index);
            self.finish(index, Err(reason.to_string()));
        }
    }

    /// Tells the view about file `index` before anything else is said about it.
    pub(super) fn queued(&self, index: usize) {
        let planned = &self.run.files[index];
        let _ = self.context.events.send(Event::Queued {
            id: index as u64,
            name: shown(planned),
            size: planned.size,
            path: Some(crate::client::shown_path(&planned.path)),
            peer: None,
        });
    }

    /// Reports file `index`: to the view, and for the final table. The first
    /// outcome of a file stands.
    pub(super) fn finish(&self, index: usize, result: Result<Done, String>) {
        let event = Event::outcome(index as u64, &result);
        {
            let mut reports = self.context.so_far.reports.lock().expect("reports lock");
            if reports[index].is_some() {
                return;
            }
            reports[index] = Some(FileReport {
                name: shown(&self.run.files[index]),
                renamed_from: None,
                timed: result
                    .as_ref()
                    .is_ok_and(|done| done.bytes >= crate::progress::OWN_LINES_FROM),
                result,
                folder: None,
            });
        }
        let _ = self.context.events.send(event);
    }
}
