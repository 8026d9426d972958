//! `--plain` (and any stderr that is not a terminal): one line per start and per outcome, for logs.

use indicatif::HumanBytes;

use super::human::{self, label};
use super::{Event, Live, Side, Sink, Summary, Upload};
use crate::term::say_line;

/// Plain lines on stderr.
pub(super) struct Plain {
    side: Side,
}

impl Plain {
    pub fn new(side: Side) -> Plain {
        Plain { side }
    }
}

/// `VERB      TEXT`, the verb padded so that the texts line up.
fn line(verb: &str, text: &str) {
    say_line(format!("{verb:<9} {text}"));
}

impl Sink for Plain {
    fn event(&mut self, event: &Event, ended: Option<&Upload>, live: &Live) {
        match event {
            Event::Started { id, size, .. } => {
                let verb = match self.side {
                    Side::Serve => "receiving",
                    Side::Send => "sending",
                };
                if let Some(upload) = live.uploads.get(id) {
                    line(verb, &format!("{}  {}", label(upload), HumanBytes(*size)));
                }
            }
            Event::Finished { done, .. } => {
                if let Some(upload) = ended {
                    line(
                        human::verb(&done.kept),
                        &human::finished_line(&label(upload), done),
                    );
                }
            }
            Event::Failed { reason, .. } => {
                if let Some(upload) = ended {
                    line("failed", &format!("{}  {reason}", label(upload)));
                }
            }
            Event::Trace { text, .. } => say_line(format!("trace {text}")),
            Event::Notice(text) => say_line(text.clone()),
            Event::Listening { .. }
            | Event::Closed { .. }
            | Event::Sent { .. }
            | Event::Connected { .. }
            | Event::Queued { .. }
            | Event::Summary(_) => {}
        }
    }

    fn summary(&mut self, summary: &Summary, _live: &Live) {
        for text in human::summary_lines(self.side, summary) {
            say_line(text);
        }
    }
}
