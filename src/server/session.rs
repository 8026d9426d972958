//! One upload on the server: read the header, say `go ahead`, stream the content into a partial file, keep it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use crossbeam_channel::Sender;
use indicatif::HumanBytes;

use super::copy::{Copier, CopyError};
use crate::drop_folder::{DropFolder, PartialFile};
use crate::names;
use crate::pace::Pace;
use crate::progress::{Counter, Event};
use crate::protocol::{self, Header, GO_AHEAD, MAX_RECV_NAME, REFUSED};

/// What every worker needs to receive an upload.
pub(crate) struct Receiver {
    pub folder: DropFolder,
    pub idle_timeout: Duration,
    pub max_size: Option<u64>,
    /// Report each protocol step (`--trace`).
    pub trace: bool,
    /// Receive at most this many bytes per second (`--rate`).
    pub rate: Option<u64>,
    pub events: Sender<Event>,
}

/// One connection being handled: who, and how to report on it.
struct Session<'a> {
    receiver: &'a Receiver,
    id: u64,
    peer: SocketAddr,
    stopping: &'a dyn Fn() -> bool,
}

/// What a successful upload leaves: its size, the name it was saved under, the name as sent.
struct Saved {
    bytes: u64,
    saved_as: String,
    shown: String,
}

impl Receiver {
    /// Receives one upload and reports how it went. Never panics on client input.
    pub fn receive(
        &self,
        id: u64,
        stream: &TcpStream,
        peer: SocketAddr,
        copier: &mut Copier,
        stopping: &dyn Fn() -> bool,
    ) {
        let session = Session {
            receiver: self,
            id,
            peer,
            stopping,
        };
        let started = Instant::now();
        let event = match session.exchange(stream, copier) {
            // The saved name is worth a mention only when it differs from the one sent.
            Ok(saved) => Event::Finished {
                id,
                bytes: saved.bytes,
                elapsed: started.elapsed(),
                saved_as: (saved.saved_as != saved.shown).then_some(saved.saved_as),
            },
            Err(e) => Event::Failed {
                id,
                reason: format!("{e:#}"),
            },
        };
        session.trace(|| format!("server closes the connection to {peer}"));
        let _ = self.events.send(event);
    }

    /// Decides, before `go ahead`, whether the upload may start; creates its partial file if so.
    fn admit(&self, header: &Header, safe_name: &str) -> Result<PartialFile, String> {
        if let Some(max) = self.max_size {
            if header.size > max {
                return Err(format!(
                    "too large: {} announced, the limit is {}",
                    HumanBytes(header.size),
                    HumanBytes(max)
                ));
            }
        }
        self.folder
            .begin(safe_name, header.size)
            .map_err(|e| e.to_string())
    }
}

impl Session<'_> {
    fn trace(&self, text: impl FnOnce() -> String) {
        if self.receiver.trace {
            let _ = self.receiver.events.send(Event::Trace {
                id: self.id,
                text: text(),
            });
        }
    }

    fn exchange(&self, stream: &TcpStream, copier: &mut Copier) -> anyhow::Result<Saved> {
        let (peer, receiver) = (self.peer, self.receiver);
        stream.set_read_timeout(Some(receiver.idle_timeout))?;
        stream.set_write_timeout(Some(receiver.idle_timeout))?;
        self.trace(|| format!("{peer} connected"));
        let header = protocol::read_header(&mut { stream }, MAX_RECV_NAME).map_err(|e| {
            if (self.stopping)() {
                anyhow!("cancelled: the server is stopping")
            } else {
                anyhow!(e)
            }
        })?;
        for line in protocol::describe_header(&header) {
            self.trace(|| format!("{peer} → server  {line}"));
        }
        let shown = names::escape_for_terminal(&header.name);
        let safe = names::safe_file_name(&header.name);
        let mut partial = match receiver.admit(&header, &safe) {
            Ok(partial) => partial,
            Err(reason) => {
                // Said in place of `go ahead`: classroom clients report a bad response, ftx shows the reason.
                let reply = format!("{REFUSED}{reason}");
                let _ = (&*stream).write_all(reply.as_bytes());
                self.trace(|| format!("server → {peer}  \"{reply}\""));
                bail!("refused \"{shown}\": {reason}");
            }
        };
        (&*stream).write_all(GO_AHEAD).context("sending go ahead")?;
        self.trace(|| {
            format!(
                "server → {peer}  \"go ahead\"  {}",
                protocol::hex(GO_AHEAD, 8)
            )
        });
        let counter = Counter::default();
        let _ = receiver.events.send(Event::Started {
            id: self.id,
            name: shown.clone(),
            size: header.size,
            counter: counter.clone(),
        });

        let size = header.size;
        let mut pace = receiver.rate.map(Pace::new);
        copier
            .copy(stream, &mut partial, size, &counter, pace.as_mut())
            .map_err(|e| match e {
                _ if (self.stopping)() => anyhow!("cancelled: the server is stopping"),
                CopyError::Closed { got } => anyhow!("client closed after {got} of {size} bytes"),
                CopyError::Socket { got, error } if protocol::is_timeout(&error) => anyhow!(
                    "client sent nothing for {} (after {got} of {size} bytes)",
                    crate::progress::seconds(receiver.idle_timeout)
                ),
                CopyError::Socket { got, error } => {
                    anyhow!(error).context(format!("receiving (after {got} of {size} bytes)"))
                }
                CopyError::Disk(error) => anyhow!(error).context("writing to the drop folder"),
            })?;
        self.trace(|| format!("{peer} → server  {size} content bytes"));
        let saved_as = partial.keep().context("saving the received file")?;
        Ok(Saved {
            bytes: size,
            saved_as,
            shown,
        })
    }
}
