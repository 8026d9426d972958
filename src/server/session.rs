//! One upload on the server: read the header, say `go ahead`, stream the content into a partial file, keep it.

use std::io::Write;

use indicatif::HumanBytes;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use crossbeam_channel::Sender;

use super::copy::{Copier, CopyError};
use crate::drop_folder::{DropFolder, PartialFile};
use crate::names;
use crate::progress::{Counter, Event};
use crate::protocol::{self, Header, GO_AHEAD, MAX_RECV_NAME, REFUSED};

/// What every worker needs to receive an upload.
pub(crate) struct Receiver {
    pub folder: DropFolder,
    pub idle_timeout: Duration,
    pub max_size: Option<u64>,
    pub events: Sender<Event>,
}

impl Receiver {
    /// Receives one upload and reports how it went. Never panics on client input.
    pub fn receive(
        &self,
        id: u64,
        mut stream: TcpStream,
        peer: SocketAddr,
        copier: &mut Copier,
        stopping: &dyn Fn() -> bool,
    ) {
        let started = Instant::now();
        let event = match self.exchange(id, &mut stream, peer, copier, stopping) {
            // The saved name is worth a mention only when it differs from the one sent.
            Ok((bytes, saved_as, shown)) => Event::Finished {
                id,
                bytes,
                elapsed: started.elapsed(),
                saved_as: (saved_as != shown).then_some(saved_as),
            },
            Err(e) => Event::Failed {
                id,
                reason: format!("{e:#}"),
            },
        };
        let _ = self.events.send(event);
    }

    fn exchange(
        &self,
        id: u64,
        stream: &mut TcpStream,
        peer: SocketAddr,
        copier: &mut Copier,
        stopping: &dyn Fn() -> bool,
    ) -> anyhow::Result<(u64, String, String)> {
        stream.set_read_timeout(Some(self.idle_timeout))?;
        stream.set_write_timeout(Some(self.idle_timeout))?;
        let header = protocol::read_header(stream, MAX_RECV_NAME).map_err(|e| {
            if stopping() {
                anyhow!("cancelled: the server is stopping")
            } else {
                anyhow!(e)
            }
        })?;
        let shown = names::escape_for_terminal(&header.name);
        let safe = names::safe_file_name(&header.name);
        let mut partial = match self.admit(&header, &safe) {
            Ok(partial) => partial,
            Err(reason) => {
                // Said in place of `go ahead`: classroom clients report a bad response, ftx shows the reason.
                let _ = stream.write_all(format!("{REFUSED}{reason}").as_bytes());
                bail!("refused \"{shown}\": {reason}");
            }
        };
        stream.write_all(GO_AHEAD).context("sending go ahead")?;
        let counter = Counter::default();
        let _ = self.events.send(Event::Started {
            id,
            label: format!("{peer}  {shown}"),
            size: header.size,
            counter: counter.clone(),
        });

        let size = header.size;
        copier
            .copy(stream, &mut partial, size, &counter)
            .map_err(|e| match e {
                _ if stopping() => anyhow!("cancelled: the server is stopping"),
                CopyError::Closed { got } => anyhow!("client closed after {got} of {size} bytes"),
                CopyError::Socket { got, error } if protocol::is_timeout(&error) => anyhow!(
                    "client sent nothing for {} (after {got} of {size} bytes)",
                    crate::progress::seconds(self.idle_timeout)
                ),
                CopyError::Socket { got, error } => {
                    anyhow!(error).context(format!("receiving (after {got} of {size} bytes)"))
                }
                CopyError::Disk(error) => anyhow!(error).context("writing to the drop folder"),
            })?;
        let saved_as = partial.keep().context("saving the received file")?;
        Ok((header.size, saved_as, shown))
    }
}

impl Receiver {
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
