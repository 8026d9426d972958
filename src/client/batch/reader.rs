//! The sender's reader of a batch: the server's answers (PROTOCOL.md B4), each matched to the frame it answers in the order the writer wrote them, until `end` or an abort (B7).

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::connection::Connection;
use crate::client::upload::in_words;
use crate::names;
use crate::outcome::{Done, FileReport, Kept};
use crate::progress::Event;
use crate::protocol;
use crate::protocol::batch::{self, Answer, Frame};

/// A frame written and not answered yet: what its answer is for.
pub(super) enum Pending {
    Claim(usize),
    Join,
    Dir,
    File {
        index: usize,
        started: Instant,
        /// The file's BLAKE3, once known (after its content, for a big file).
        hash: Arc<OnceLock<String>>,
        /// Bytes the server held already.
        offset: u64,
    },
    /// A question about parts held; the answer goes to the writer.
    Ask(crossbeam_channel::Sender<Vec<u64>>),
}

impl Pending {
    /// Whether `answer` can be the server's answer to this frame.
    fn fits(&self, answer: &Answer) -> bool {
        match self {
            Pending::Claim(_) | Pending::Dir | Pending::File { .. } => {
                matches!(answer, Answer::Saved { .. } | Answer::Failed { .. })
            }
            Pending::Join => matches!(answer, Answer::Top { .. }),
            Pending::Ask(_) => matches!(answer, Answer::Have { .. }),
        }
    }
}

/// The frames of one batch written and not answered yet, in the order they
/// were written. The writer can add one only by writing its frame
/// ([`InFlight::write`]), and the reader takes them in that order only
/// ([`InFlight::answered`]), so an answer always meets the frame it answers.
#[derive(Default)]
pub(super) struct InFlight {
    queue: Mutex<VecDeque<Pending>>,
}

impl InFlight {
    /// Writes `frame` to `out`, waiting for an answer as `pending`. It is
    /// noted before it is written: its answer cannot come before it.
    pub(super) fn write(
        &self,
        out: &mut impl Write,
        frame: &Frame,
        pending: Pending,
    ) -> std::io::Result<()> {
        self.queue
            .lock()
            .expect("in flight lock")
            .push_back(pending);
        out.write_all(&batch::line(frame))
    }

    /// The frame `answer` answers: the first one not answered yet, if the
    /// answer fits it; an error otherwise (the batch can no longer be followed).
    fn answered(&self, answer: &Answer) -> Result<Pending, String> {
        let mut queue = self.queue.lock().expect("in flight lock");
        match queue.front() {
            None => Err("an answer to nothing that was sent".to_string()),
            Some(first) if !first.fits(answer) => {
                Err("an answer that does not fit the frame it answers".to_string())
            }
            Some(_) => Ok(queue.pop_front().expect("a first frame")),
        }
    }

    /// Forgets every frame in flight, unreported (a batch never welcomed):
    /// a writer waiting for an answer is let go at once.
    pub(super) fn let_go(&self) {
        self.queue.lock().expect("in flight lock").clear();
    }

    /// The next frame never answered, once the batch ended.
    fn unanswered(&self) -> Option<Pending> {
        self.queue.lock().expect("in flight lock").pop_front()
    }
}

impl Connection<'_> {
    /// Reads the server's answers, in order, until its `end` or the connection's.
    pub(super) fn read_answers(
        &self,
        stream: &TcpStream,
        in_flight: &InFlight,
        writing: &AtomicBool,
    ) {
        let mut reader = BufReader::new(stream);
        let ended = loop {
            let line = match batch::read_line(&mut reader) {
                Ok(Some(line)) => line,
                Ok(None) => break Some("the server closed the batch before answering".to_string()),
                // While frames still go out, the next answer may be a big file away.
                Err(e) if protocol::is_timeout(&e) && writing.load(Ordering::SeqCst) => continue,
                Err(e) => {
                    break Some(format!(
                        "waiting for the server's answer: {}",
                        in_words(&e, self.context.config.timeout)
                    ))
                }
            };
            let answer: Answer = match batch::parse(&line) {
                Ok(answer) => answer,
                Err(e) => break Some(format!("an answer that cannot be read: {e}")),
            };
            match answer {
                Answer::End => break None,
                Answer::Aborted { reason } => {
                    break Some(format!(
                        "the server ended the batch: {}",
                        names::escape_for_terminal(reason.as_bytes())
                    ))
                }
                _ => {}
            }
            match in_flight.answered(&answer) {
                Ok(waiting) => self.answered(waiting, answer),
                Err(reason) => break Some(reason),
            }
        };
        if let Some(reason) = ended {
            // Everything sent and not answered failed; a big verified file
            // left its part on the server (B8), for the next run to resume.
            while let Some(waiting) = in_flight.unanswered() {
                if let Pending::File { index, .. } = waiting {
                    let resumable = self.context.config.verify
                        && self.run.files[index]
                            .size
                            .is_some_and(|size| size >= batch::WORTH_RESUMING);
                    let reason = match resumable {
                        true => format!(
                            "{reason}; run the same command again to resume it where it stopped"
                        ),
                        false => reason.clone(),
                    };
                    self.finish(index, Err(reason));
                }
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// What an answer means for the frame it answers.
    fn answered(&self, waiting: Pending, answer: Answer) {
        match (waiting, answer) {
            (
                Pending::File {
                    index,
                    started,
                    hash,
                    offset,
                },
                Answer::Saved {
                    saved_as,
                    size,
                    blake3,
                    already,
                    ..
                },
            ) => {
                let planned = &self.run.files[index];
                let sent = planned.size.unwrap_or(size);
                let hash = hash.get().cloned();
                let result = if self.context.config.verify && hash.is_none() {
                    Err("not verified: the server answered before the file's hash was sent".into())
                } else if hash.is_some() && blake3.as_deref() != hash.as_deref() {
                    Err("verification failed: the server's BLAKE3 is not the one sent".to_string())
                } else if size != sent {
                    Err(format!(
                        "the server saved {size} bytes, not the {sent} sent"
                    ))
                } else {
                    Ok(Done {
                        kept: Kept::Saved {
                            saved_as: Some(names::escape_for_terminal(saved_as.as_bytes()))
                                .filter(|s| *s != planned.batch_path),
                        },
                        bytes: size,
                        elapsed: started.elapsed(),
                        verified: hash,
                        // Saved by an earlier run into a folder taken up again: nothing moved now.
                        resumed_from: if already { size } else { offset },
                    })
                };
                self.finish(index, result);
            }
            (Pending::File { index, .. }, Answer::Failed { reason, .. }) => self.finish(
                index,
                Err(format!(
                    "the server could not keep it: {}",
                    names::escape_for_terminal(reason.as_bytes())
                )),
            ),
            (Pending::Ask(tell), Answer::Have { have }) => {
                let _ = tell.send(have);
            }
            (Pending::Claim(index), Answer::Saved { saved_as, .. }) => {
                // The first file moved into its folder: its report says where it is now.
                let mut reports = self.context.so_far.reports.lock().expect("reports lock");
                if let Some(FileReport {
                    result: Ok(done), ..
                }) = &mut reports[index]
                {
                    done.kept = Kept::Saved {
                        saved_as: Some(names::escape_for_terminal(saved_as.as_bytes())),
                    };
                }
            }
            (Pending::Claim(_), Answer::Failed { reason, .. }) => {
                let _ = self.context.events.send(Event::Notice(format!(
                    "ftx: the first file stays at the top of the drop folder: {}",
                    names::escape_for_terminal(reason.as_bytes())
                )));
            }
            (Pending::Dir, Answer::Failed { path, reason }) => {
                let _ = self.context.events.send(Event::Notice(format!(
                    "ftx: the empty folder {} was not made: {}",
                    names::escape_for_terminal(path.as_bytes()),
                    names::escape_for_terminal(reason.as_bytes())
                )));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Answer {
        Answer::Saved {
            path: "a".into(),
            saved_as: "a".into(),
            size: 1,
            blake3: None,
            already: false,
        }
    }

    fn file(index: usize) -> Pending {
        Pending::File {
            index,
            started: Instant::now(),
            hash: Arc::default(),
            offset: 0,
        }
    }

    /// Answers meet the frames they answer in the order written, and an
    /// answer that does not fit the first frame not answered is refused.
    #[test]
    fn answers_are_matched_in_the_order_frames_were_written() {
        let in_flight = InFlight::default();
        let mut out = Vec::new();
        let dir = Frame::Dir { dir: "d".into() };
        let (tell, told) = crossbeam_channel::bounded(1);
        in_flight
            .write(&mut out, &Frame::Ask { ask: vec![] }, Pending::Ask(tell))
            .unwrap();
        in_flight.write(&mut out, &dir, file(7)).unwrap();
        in_flight.write(&mut out, &dir, Pending::Dir).unwrap();
        assert_eq!(
            out,
            [
                batch::line(&Frame::Ask { ask: vec![] }),
                batch::line(&dir),
                batch::line(&dir)
            ]
            .concat(),
            "each frame is written as it is noted"
        );

        // A file's answer where the question waits: refused, and the question still waits.
        let err = in_flight.answered(&saved()).err().unwrap();
        assert!(err.contains("does not fit"), "{err}");
        match in_flight.answered(&Answer::Have { have: vec![3] }) {
            Ok(Pending::Ask(tell)) => tell.send(vec![3]).unwrap(),
            _ => panic!("the question was not answered first"),
        }
        assert_eq!(told.recv().unwrap(), [3]);
        assert!(matches!(
            in_flight.answered(&saved()),
            Ok(Pending::File { index: 7, .. })
        ));
        let top = Answer::Top {
            top: "t".into(),
            saved_as: "t".into(),
            token: "x".into(),
        };
        assert!(in_flight.answered(&top).is_err(), "a folder is not a top");
        assert!(matches!(in_flight.answered(&saved()), Ok(Pending::Dir)));
        let err = in_flight.answered(&saved()).err().unwrap();
        assert_eq!(err, "an answer to nothing that was sent");
    }
}
