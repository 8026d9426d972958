//! Progress events from workers, and the one render thread that turns them into bars or plain lines.

use std::collections::BTreeMap;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use console::{style, Term};
use crossbeam_channel::{Receiver, Sender};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Workers send at most one byte count per upload this often.
const REPORT_EVERY: Duration = Duration::from_millis(50);

/// How often the screen is refreshed when no event comes (elapsed time, resizes).
const TICK: Duration = Duration::from_millis(200);

/// Screen rows kept for the footer and the "+N more" line.
const RESERVED_ROWS: usize = 3;

/// What one upload goes through, as told by the worker handling it.
/// Every text in an event is already safe to print.
#[derive(Debug, Clone)]
pub enum Event {
    /// Server: accepted, waiting for a free worker. Sender: connecting and waiting for `go ahead`.
    Waiting { id: u64, label: String },
    /// Content is about to flow.
    Started { id: u64, label: String, size: u64 },
    /// Content bytes moved so far.
    Progress { id: u64, bytes: u64 },
    /// All bytes moved; on the server, `saved_as` is the file's name in the drop folder.
    Finished {
        id: u64,
        bytes: u64,
        elapsed: Duration,
        saved_as: Option<String>,
    },
    /// The upload failed; `reason` says why in plain words.
    Failed { id: u64, reason: String },
    /// A line for the log that is about no single upload (accept errors, shutting down).
    Notice(String),
}

/// Which end of the protocol is drawing: the words differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Serve,
    Send,
}

/// Live bars in a terminal, or one plain line per start and per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bars,
    Plain,
}

impl Output {
    /// Bars only when stderr is a terminal and plain lines were not asked for.
    pub fn choose(plain: bool) -> Output {
        if !plain && Term::stderr().is_term() {
            Output::Bars
        } else {
            Output::Plain
        }
    }
}

/// Turns off colours when `NO_COLOR` is set (see no-color.org).
pub fn respect_no_color() {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

/// What the sender knows before it starts: the work it is about to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Planned {
    pub files: u64,
    pub bytes: u64,
}

/// The counts at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub done: u64,
    pub failed: u64,
    pub bytes: u64,
}

/// Batches one upload's byte counts so reporting never slows the transfer.
pub struct Reporter {
    events: Sender<Event>,
    id: u64,
    bytes: u64,
    last_sent: Instant,
}

impl Reporter {
    pub fn new(events: Sender<Event>, id: u64) -> Reporter {
        Reporter {
            events,
            id,
            bytes: 0,
            last_sent: Instant::now(),
        }
    }

    /// Counts `n` more bytes; tells the render thread at most every 50 ms.
    pub fn add(&mut self, n: u64) {
        self.bytes += n;
        if self.last_sent.elapsed() >= REPORT_EVERY {
            self.last_sent = Instant::now();
            let _ = self.events.send(Event::Progress {
                id: self.id,
                bytes: self.bytes,
            });
        }
    }

    /// Bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Starts the render thread. It ends, returning the tally, once every sender is dropped.
pub fn spawn(
    side: Side,
    output: Output,
    planned: Option<Planned>,
) -> (Sender<Event>, JoinHandle<Tally>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = thread::Builder::new()
        .name("render".into())
        .spawn(move || render(rx, side, output, planned))
        .expect("spawn render thread");
    (tx, handle)
}

fn render(events: Receiver<Event>, side: Side, output: Output, planned: Option<Planned>) -> Tally {
    let mut view = View::new(side, output, planned);
    loop {
        match events.recv_timeout(TICK) {
            Ok(event) => view.apply(event),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        view.refresh();
    }
    view.close()
}

/// One upload the view knows about.
struct Entry {
    label: String,
    size: u64,
    bytes: u64,
    started: Option<Instant>,
    bar: Option<ProgressBar>,
}

/// Everything the render thread draws, and the counts behind it.
struct View {
    side: Side,
    output: Output,
    planned: Option<Planned>,
    entries: BTreeMap<u64, Entry>,
    tally: Tally,
    began: Instant,
    bars: Option<Bars>,
}

/// The indicatif side of the view, present only when drawing bars.
struct Bars {
    multi: MultiProgress,
    footer: ProgressBar,
    more: Option<ProgressBar>,
}

impl View {
    fn new(side: Side, output: Output, planned: Option<Planned>) -> View {
        let bars = (output == Output::Bars).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let footer = match planned {
                Some(planned) => {
                    let bar = ProgressBar::new(planned.bytes).with_style(style_overall());
                    bar.set_prefix("total");
                    bar
                }
                None => ProgressBar::new(0).with_style(template("{msg}")),
            };
            let footer = multi.add(footer);
            Bars {
                multi,
                footer,
                more: None,
            }
        });
        let mut view = View {
            side,
            output,
            planned,
            entries: BTreeMap::new(),
            tally: Tally::default(),
            began: Instant::now(),
            bars,
        };
        view.refresh();
        view
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Waiting { id, label } => {
                self.entries.insert(
                    id,
                    Entry {
                        label,
                        size: 0,
                        bytes: 0,
                        started: None,
                        bar: None,
                    },
                );
            }
            Event::Started { id, label, size } => {
                if self.output == Output::Plain {
                    let verb = match self.side {
                        Side::Serve => "receiving",
                        Side::Send => "sending",
                    };
                    self.print(format!("{verb:<9} {label}  {}", HumanBytes(size)));
                }
                let entry = self.entries.entry(id).or_insert_with(|| Entry {
                    label: String::new(),
                    size: 0,
                    bytes: 0,
                    started: None,
                    bar: None,
                });
                entry.label = label;
                entry.size = size;
                entry.started = Some(Instant::now());
                if let Some(bar) = entry.bar.take() {
                    if let Some(bars) = &self.bars {
                        bars.multi.remove(&bar);
                    }
                }
            }
            Event::Progress { id, bytes } => {
                if let Some(entry) = self.entries.get_mut(&id) {
                    self.tally.bytes += bytes.saturating_sub(entry.bytes);
                    entry.bytes = bytes;
                    if let Some(bar) = &entry.bar {
                        bar.set_position(bytes);
                    }
                }
            }
            Event::Finished {
                id,
                bytes,
                elapsed,
                saved_as,
            } => {
                let entry = self.remove(id);
                self.tally.bytes += bytes.saturating_sub(entry.bytes);
                self.tally.done += 1;
                let secs = elapsed.as_secs_f64().max(1e-6);
                let rate = HumanBytes((bytes as f64 / secs) as u64);
                let mut line = format!(
                    "{}  {}  in {} ({rate}/s)",
                    entry.label,
                    HumanBytes(bytes),
                    seconds(elapsed)
                );
                if let Some(saved) = saved_as {
                    line.push_str(&format!("  saved as {saved}"));
                }
                let verb = match self.side {
                    Side::Serve => "saved",
                    Side::Send => "sent",
                };
                self.print_outcome(true, verb, line);
            }
            Event::Failed { id, reason } => {
                let entry = self.remove(id);
                self.tally.failed += 1;
                self.print_outcome(false, "failed", format!("{}  {reason}", entry.label));
            }
            Event::Notice(text) => self.print(text),
        }
    }

    fn remove(&mut self, id: u64) -> Entry {
        let entry = self.entries.remove(&id).unwrap_or(Entry {
            label: format!("#{id}"),
            size: 0,
            bytes: 0,
            started: None,
            bar: None,
        });
        if let (Some(bar), Some(bars)) = (&entry.bar, &self.bars) {
            bar.finish_and_clear();
            bars.multi.remove(bar);
        }
        entry
    }

    fn print_outcome(&self, ok: bool, verb: &str, line: String) {
        let text = match self.output {
            Output::Plain => format!("{verb:<9} {line}"),
            Output::Bars if ok => format!("{} {line}", style("✓").green().bold()),
            Output::Bars => format!("{} {line}", style("✗").red().bold()),
        };
        self.print(text);
    }

    fn print(&self, line: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Gives bars to as many uploads as the terminal has rows for, and updates the footer.
    fn refresh(&mut self) {
        let Some(bars) = &mut self.bars else { return };
        let rows = Term::stderr().size().0 as usize;
        let room = rows.saturating_sub(RESERVED_ROWS).max(1);
        let mut shown = 0;
        let mut hidden = 0;
        for entry in self.entries.values_mut() {
            if shown < room {
                shown += 1;
                if entry.bar.is_none() {
                    let bar = new_bar(entry, self.side);
                    entry.bar = Some(match &bars.more {
                        Some(more) => bars.multi.insert_before(more, bar),
                        None => bars.multi.insert_before(&bars.footer, bar),
                    });
                }
            } else {
                hidden += 1;
                if let Some(bar) = entry.bar.take() {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
            }
        }
        match (&bars.more, hidden) {
            (Some(more), 0) => {
                more.finish_and_clear();
                bars.multi.remove(more);
                bars.more = None;
            }
            (Some(more), n) => more.set_message(format!("  +{n} more")),
            (None, 0) => {}
            (None, n) => {
                let more = bars.multi.insert_before(
                    &bars.footer,
                    ProgressBar::new(0).with_style(template("{msg}")),
                );
                more.set_message(format!("  +{n} more"));
                bars.more = Some(more);
            }
        }
        let waiting = self
            .entries
            .values()
            .filter(|e| e.started.is_none())
            .count();
        let active = self.entries.len() - waiting;
        let t = self.tally;
        match self.planned {
            Some(planned) => {
                bars.footer.set_position(t.bytes);
                let failed = if t.failed > 0 {
                    format!(", {} failed", style(t.failed).red())
                } else {
                    String::new()
                };
                bars.footer.set_message(format!(
                    "{}/{} files{failed}",
                    t.done + t.failed,
                    planned.files
                ));
            }
            None => {
                let secs = self.began.elapsed().as_secs_f64().max(1e-6);
                bars.footer.set_message(format!(
                    "{} active · {} waiting · {} saved · {} failed · {} received ({}/s)",
                    style(active).cyan().bold(),
                    style(waiting).yellow(),
                    style(t.done).green(),
                    if t.failed > 0 {
                        style(t.failed).red()
                    } else {
                        style(t.failed)
                    },
                    HumanBytes(t.bytes),
                    HumanBytes((t.bytes as f64 / secs) as u64),
                ));
            }
        }
    }

    fn close(mut self) -> Tally {
        if let Some(bars) = self.bars.take() {
            for entry in self.entries.values() {
                if let Some(bar) = &entry.bar {
                    bar.finish_and_clear();
                }
            }
            if let Some(more) = &bars.more {
                more.finish_and_clear();
            }
            bars.footer.finish_and_clear();
            let _ = bars.multi.clear();
        }
        self.tally
    }
}

fn new_bar(entry: &Entry, side: Side) -> ProgressBar {
    let bar = match entry.started {
        Some(started) => {
            let bar = ProgressBar::new(entry.size).with_style(style_upload());
            bar.set_position(entry.bytes);
            bar.set_elapsed(started.elapsed());
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner()
                .with_style(template("{prefix} {spinner:.yellow} {msg:.yellow}"));
            bar.set_message(match side {
                Side::Serve => "waiting for a free worker",
                Side::Send => "waiting for go ahead",
            });
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }
    };
    bar.set_prefix(console::truncate_str(&entry.label, 48, "…").into_owned());
    bar
}

fn template(text: &str) -> ProgressStyle {
    ProgressStyle::with_template(text).expect("valid progress template")
}

fn style_upload() -> ProgressStyle {
    template(
        "{prefix:48} {wide_bar:.cyan/blue} {bytes:>10}/{total_bytes:<10} {percent:>3}% {binary_bytes_per_sec:>12} ETA {eta:>3}",
    )
    .progress_chars("█▉▊▋▌▍▎▏ ")
}

fn style_overall() -> ProgressStyle {
    template("{prefix:.bold} {msg:<14} {wide_bar:.green/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>3}")
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// A duration as people read it in a log: `0.42s`, `12.3s`, `2m05s`.
pub fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(420)), "0.42s");
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn plain_render_counts_outcomes_and_bytes() {
        let (tx, handle) = spawn(Side::Serve, Output::Plain, None);
        tx.send(Event::Waiting {
            id: 1,
            label: "a".into(),
        })
        .unwrap();
        tx.send(Event::Started {
            id: 1,
            label: "a x".into(),
            size: 10,
        })
        .unwrap();
        tx.send(Event::Progress { id: 1, bytes: 4 }).unwrap();
        tx.send(Event::Finished {
            id: 1,
            bytes: 10,
            elapsed: Duration::from_secs(1),
            saved_as: None,
        })
        .unwrap();
        tx.send(Event::Waiting {
            id: 2,
            label: "b".into(),
        })
        .unwrap();
        tx.send(Event::Failed {
            id: 2,
            reason: "boom".into(),
        })
        .unwrap();
        drop(tx);
        assert_eq!(
            handle.join().unwrap(),
            Tally {
                done: 1,
                failed: 1,
                bytes: 10
            }
        );
    }

    #[test]
    fn reporter_batches_byte_counts() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut reporter = Reporter::new(tx, 7);
        for _ in 0..10_000 {
            reporter.add(1);
        }
        assert_eq!(reporter.bytes(), 10_000);
        assert!(
            rx.try_iter().count() < 10,
            "one event per read would flood the render thread"
        );
    }
}
