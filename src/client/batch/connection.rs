//! One batch connection of the sender: opened (PROTOCOL.md B2), fed units by a writer while a reader takes the answers, and every file it took given an outcome, whatever happens.

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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
        let stream = match self.open() {
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
        let mut broken: Option<String> = None;
        let mut taken = Vec::new();
        thread::scope(|scope| {
            scope.spawn(|| self.read_answers(&stream, &in_flight, &writing));
            for unit in work {
                if let Some(reason) = &broken {
                    self.fail_unit(&unit, reason);
                    continue;
                }
                taken.extend_from_slice(&unit.files);
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

    /// Connects and opens a batch (B2), asking again with pauses that double,
    /// for up to `--timeout`, while the server is busy (`--per-ip`).
    fn open(&self) -> Result<TcpStream, String> {
        let trace = |text: String| {
            if self.context.config.trace {
                let _ = self.context.events.send(Event::Notice(text));
            }
        };
        connect::with_retry(self.context.config, trace, || self.try_open())
    }

    /// One try at [`Connection::open`].
    fn try_open(&self) -> Result<TcpStream, Opening> {
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
        match batch::read_welcome(&mut &stream) {
            Ok(Welcome::Go) => Ok(stream),
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
