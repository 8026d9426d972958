//! Progress events from workers, and the one render thread that turns them into bars or plain lines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use console::{style, Term};
use crossbeam_channel::{Receiver, Sender};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often byte counts are read and the screen refreshed when no event comes.
const TICK: Duration = Duration::from_millis(100);

/// Screen rows kept for the footer and the "+N more" line.
const RESERVED_ROWS: usize = 3;

/// What one upload goes through, as told by the worker handling it.
/// Every text in an event is already safe to print.
#[derive(Debug, Clone)]
pub enum Event {
    /// Server: accepted, waiting for a free worker. Sender: connecting and waiting for `go ahead`.
    Waiting { id: u64, label: String },
    /// Content is about to flow; the worker counts it in `counter` as it goes.
    Started {
        id: u64,
        label: String,
        size: u64,
        counter: Counter,
    },
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

/// One upload's running byte count: the worker adds to it as bytes move, the
/// render thread reads it whenever it draws. One relaxed atomic add per chunk
/// costs nothing next to the copy, and the screen is never behind a batch.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Counts `n` more bytes.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
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
    counter: Option<Counter>,
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
    /// Recent (time, bytes so far) samples, for a rate that tells the truth now rather than on average.
    samples: std::collections::VecDeque<(Instant, u64)>,
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
                    let bar = ProgressBar::with_draw_target(
                        Some(planned.bytes),
                        ProgressDrawTarget::hidden(),
                    )
                    .with_style(style_overall());
                    bar.set_prefix("total");
                    bar
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
                    .with_style(template("{msg}")),
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
            samples: std::collections::VecDeque::new(),
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
                        counter: None,
                        started: None,
                        bar: None,
                    },
                );
            }
            Event::Started {
                id,
                label,
                size,
                counter,
            } => {
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
                    counter: None,
                    started: None,
                    bar: None,
                });
                entry.label = label;
                entry.size = size;
                entry.counter = Some(counter);
                entry.started = Some(Instant::now());
                // The waiting spinner goes; refresh() gives the upload a real bar.
                if let Some(bar) = entry.bar.take() {
                    bar.finish_and_clear();
                    if let Some(bars) = &self.bars {
                        bars.multi.remove(&bar);
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
            counter: None,
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
        for entry in self.entries.values_mut() {
            if let Some(counter) = &entry.counter {
                let bytes = counter.get();
                self.tally.bytes += bytes.saturating_sub(entry.bytes);
                entry.bytes = bytes;
                if let Some(bar) = &entry.bar {
                    bar.set_position(bytes);
                }
            }
        }
        let Some(bars) = &mut self.bars else { return };
        let rows = Term::stderr().size().0 as usize;
        let room = rows.saturating_sub(RESERVED_ROWS).max(1);
        let mut shown = 0;
        let mut hidden = 0;
        // Uploads in progress sit above those still waiting, and get the rows first.
        let first_waiting = self
            .entries
            .values()
            .filter(|e| e.started.is_none())
            .find_map(|e| e.bar.clone());
        let (active, waiting): (Vec<&mut Entry>, Vec<&mut Entry>) =
            self.entries.values_mut().partition(|e| e.started.is_some());
        for entry in active.into_iter().chain(waiting) {
            if shown < room {
                shown += 1;
                if entry.bar.is_none() {
                    let bar = new_bar(entry, self.side);
                    let anchor = match (&first_waiting, &bars.more) {
                        (Some(waiting), _) if entry.started.is_some() => waiting,
                        (_, Some(more)) => more,
                        _ => &bars.footer,
                    };
                    let bar = bars.multi.insert_before(anchor, bar);
                    if entry.started.is_none() {
                        bar.enable_steady_tick(Duration::from_millis(120));
                    }
                    entry.bar = Some(bar);
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
                let rate = recent_rate(&mut self.samples, t.bytes);
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
                    HumanBytes(rate),
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

/// A bar for one upload. It is born hidden: a bar drawn before it joins the
/// MultiProgress would write straight to the terminal and tear the screen.
fn new_bar(entry: &Entry, side: Side) -> ProgressBar {
    let bar = match entry.started {
        Some(started) => {
            let bar = ProgressBar::with_draw_target(Some(entry.size), ProgressDrawTarget::hidden())
                .with_style(style_upload());
            bar.set_position(entry.bytes);
            bar.set_elapsed(started.elapsed());
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
                .with_style(template("{prefix} {spinner:.yellow} {msg:.yellow}"));
            bar.set_message(match side {
                Side::Serve => "waiting for a free worker",
                Side::Send => "waiting for go ahead",
            });
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
    .progress_chars("█▉▊▋▌▍▎▏░")
}

fn style_overall() -> ProgressStyle {
    template("{prefix:.bold} {msg:<14} {wide_bar:.green/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>3}")
        .progress_chars("█▉▊▋▌▍▎▏░")
}

/// How far back the footer's rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Bytes per second over the last few seconds, given the running total.
fn recent_rate(samples: &mut std::collections::VecDeque<(Instant, u64)>, total: u64) -> u64 {
    let now = Instant::now();
    samples.push_back((now, total));
    while samples.len() > 2 && now.duration_since(samples[1].0) >= RATE_WINDOW {
        samples.pop_front();
    }
    let (then, before) = samples[0];
    let secs = now.duration_since(then).as_secs_f64();
    if secs < 0.2 {
        0
    } else {
        ((total - before) as f64 / secs) as u64
    }
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
        let counter = Counter::default();
        counter.add(4);
        tx.send(Event::Started {
            id: 1,
            label: "a x".into(),
            size: 10,
            counter,
        })
        .unwrap();
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
    fn counters_are_shared_between_clones() {
        let counter = Counter::default();
        let seen_by_render = counter.clone();
        counter.add(3);
        counter.add(4);
        assert_eq!(seen_by_render.get(), 7);
    }
}
