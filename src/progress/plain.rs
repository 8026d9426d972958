//! `--plain` (and any stderr that is not a terminal): one line per start and per outcome, for logs.

use crate::term::Bytes;

use super::human::{self, label};
use super::{Event, Live, Side, Sink, Summary, Tracked};
use crate::term::say_all;

/// Plain lines on stderr, gathered while more events wait and written
/// together once none do: thousands of small files a second, few writes.
pub(super) struct Plain {
    side: Side,
    lines: String,
}

impl Plain {
    pub fn new(side: Side) -> Plain {
        Plain {
            side,
            lines: String::new(),
        }
    }

    /// `VERB      TEXT`, the verb padded so that the texts line up.
    fn line(&mut self, verb: &str, text: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(self.lines, "{verb:<9} {text}");
    }

    fn say(&mut self, text: &str) {
        self.lines.push_str(text);
        self.lines.push('\n');
    }
}

impl Sink for Plain {
    fn event(&mut self, event: &Event, ended: Option<&Tracked>, live: &Live) {
        match event {
            Event::Started { id, size, .. } => {
                let verb = match self.side {
                    Side::Serve => "receiving",
                    Side::Send => "sending",
                };
                // A small file of a batch: its outcome line follows within
                // moments, a start line would double a folder's log. A classic
                // upload always has one, so that a client that stalls is on record.
                if let Some(upload) = live.uploads.get(id).filter(|u| !u.is_small_of_batch()) {
                    self.line(verb, &format!("{}  {}", label(upload), Bytes(*size)));
                }
            }
            Event::Finished { done, .. } => {
                if let Some(upload) = ended {
                    self.line(
                        human::verb(&done.kept),
                        &human::finished_line(&label(upload), done, !upload.is_small_of_batch()),
                    );
                }
            }
            Event::Failed { reason, .. } => {
                if let Some(upload) = ended {
                    self.line("failed", &format!("{}  {reason}", label(upload)));
                }
            }
            Event::Trace { text, .. } => self.say(&format!("trace {text}")),
            Event::Notice(text) => self.say(text),
            Event::Listening { .. }
            | Event::Closed { .. }
            | Event::BatchEnded(_)
            | Event::Sent { .. }
            | Event::Connected { .. }
            | Event::Queued { .. }
            | Event::Summary(_)
            | Event::Interrupted { .. } => {}
        }
    }

    fn idle(&mut self) {
        if !self.lines.is_empty() {
            say_all(&self.lines);
            self.lines.clear();
        }
    }

    fn summary(&mut self, summary: &Summary, _live: &Live) {
        for (name, reason) in human::cut_short(summary) {
            self.line("failed", &format!("{name}  {reason}"));
        }
        for text in human::summary_lines(self.side, summary) {
            self.say(&text);
        }
        self.idle();
    }
}
