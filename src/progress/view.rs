//! What the render thread keeps and draws: one entry per upload, bars or plain lines or JSON, the footer and the final table.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use console::{style, Term};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::json::{self, Record};
use super::{Counter, Event, Output, Planned, Side, Tally};

/// Screen rows kept for the footer and the "+N more" line.
const RESERVED_ROWS: usize = 3;

/// How often `--json` reports the bytes of each upload in progress.
const JSON_PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// How far back the footer's rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Widest label (client address and name) a bar shows.
const LABEL_WIDTH: usize = 44;

/// One upload the view knows about.
struct Entry {
    peer: Option<SocketAddr>,
    name: Option<String>,
    size: u64,
    bytes: u64,
    counter: Option<Counter>,
    started: Option<Instant>,
    bar: Option<ProgressBar>,
    reported: Instant,
}

impl Entry {
    fn new(peer: Option<SocketAddr>, name: Option<String>) -> Entry {
        Entry {
            peer,
            name,
            size: 0,
            bytes: 0,
            counter: None,
            started: None,
            bar: None,
            reported: Instant::now(),
        }
    }

    /// What a person reads: `client  name`, or whichever of the two is known.
    fn label(&self) -> String {
        match (&self.peer, &self.name) {
            (Some(peer), Some(name)) => format!("{peer}  {name}"),
            (Some(peer), None) => peer.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => String::from("?"),
        }
    }
}

/// One line of the sender's final table.
struct Outcome {
    label: String,
    size: u64,
    elapsed: Option<Duration>,
    failure: Option<String>,
}

/// Everything the render thread draws, and the counts behind it.
pub(super) struct View {
    side: Side,
    output: Output,
    planned: Option<Planned>,
    entries: BTreeMap<u64, Entry>,
    tally: Tally,
    began: Instant,
    /// Recent (time, bytes so far) samples, for a rate that tells the truth now rather than on average.
    samples: VecDeque<(Instant, u64)>,
    bars: Option<Bars>,
    outcomes: Vec<Outcome>,
    /// Widest label that fits the terminal now.
    label_width: usize,
}

/// The indicatif side of the view, present only when drawing bars.
struct Bars {
    multi: MultiProgress,
    footer: ProgressBar,
    more: Option<ProgressBar>,
}

impl View {
    pub fn new(side: Side, output: Output, planned: Option<Planned>) -> View {
        let bars = (output == Output::Bars).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let footer = match planned {
                Some(planned) => {
                    let bar = hidden_bar(Some(planned.bytes)).with_style(style_overall());
                    bar.set_prefix("total");
                    bar
                }
                None => hidden_bar(None).with_style(template("{msg}")),
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
            samples: VecDeque::new(),
            bars,
            outcomes: Vec::new(),
            label_width: LABEL_WIDTH,
        };
        view.refresh();
        view
    }

    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Listening {
                address,
                dir,
                workers,
            } => self.json(Record {
                event: "listening",
                address: Some(address.to_string()),
                dir: Some(&dir),
                workers: Some(workers),
                ..Record::default()
            }),
            Event::Waiting { id, peer, name } => {
                let entry = Entry::new(peer, name);
                self.json(Record {
                    event: "queued",
                    id: Some(id),
                    client: entry.peer.map(|p| p.to_string()),
                    name: entry.name.as_deref(),
                    ..Record::default()
                });
                self.entries.insert(id, entry);
            }
            Event::Started {
                id,
                name,
                size,
                counter,
            } => self.start(id, name, size, counter),
            Event::Finished {
                id,
                bytes,
                elapsed,
                saved_as,
            } => self.finish(id, bytes, elapsed, saved_as),
            Event::Failed { id, reason } => self.fail(id, reason),
            Event::Trace { id, text } => {
                self.json(Record {
                    event: "trace",
                    id: Some(id),
                    text: Some(&text),
                    ..Record::default()
                });
                if self.output.is_human() {
                    self.print(format!("{} {text}", style("trace").dim()));
                }
            }
            Event::Notice(text) => {
                self.json(Record {
                    event: "notice",
                    text: Some(&text),
                    ..Record::default()
                });
                if self.output.is_human() {
                    self.print(text);
                }
            }
        }
    }

    fn start(&mut self, id: u64, name: String, size: u64, counter: Counter) {
        let entry = self
            .entries
            .entry(id)
            .or_insert_with(|| Entry::new(None, None));
        entry.name = Some(name);
        entry.size = size;
        entry.counter = Some(counter);
        entry.started = Some(Instant::now());
        let label = entry.label();
        // The waiting line becomes the upload's bar in place. Removing it and adding
        // a new one would free its row while its spinner may still draw there once more.
        if let Some(bar) = &entry.bar {
            bar.disable_steady_tick();
            bar.set_style(style_upload(self.label_width));
            bar.set_length(size);
            bar.set_position(0);
            bar.reset_elapsed();
            bar.reset_eta();
            bar.set_prefix(console::truncate_str(&label, self.label_width, "…").into_owned());
        }
        let client = entry.peer.map(|p| p.to_string());
        let name = entry.name.clone();
        self.json(Record {
            event: "started",
            id: Some(id),
            client,
            name: name.as_deref(),
            size: Some(size),
            ..Record::default()
        });
        if self.output == Output::Plain {
            let verb = match self.side {
                Side::Serve => "receiving",
                Side::Send => "sending",
            };
            self.print(format!("{verb:<9} {label}  {}", HumanBytes(size)));
        }
    }

    fn finish(&mut self, id: u64, bytes: u64, elapsed: Duration, saved_as: Option<String>) {
        let entry = self.remove(id);
        self.tally.bytes += bytes.saturating_sub(entry.bytes);
        self.tally.done += 1;
        self.json(Record {
            event: "finished",
            id: Some(id),
            client: entry.peer.map(|p| p.to_string()),
            name: entry.name.as_deref(),
            saved_as: saved_as.as_deref(),
            size: Some(entry.size),
            bytes: Some(bytes),
            duration_ms: Some(json::millis(elapsed)),
            ..Record::default()
        });
        let label = entry.label();
        let mut line = format!(
            "{label}  {}  in {} ({}/s)",
            HumanBytes(bytes),
            seconds(elapsed),
            per_second(bytes, elapsed)
        );
        if let Some(saved) = &saved_as {
            line.push_str(&format!("  saved as {saved}"));
        }
        let verb = match self.side {
            Side::Serve => "saved",
            Side::Send => "sent",
        };
        self.print_outcome(true, verb, line);
        self.outcomes.push(Outcome {
            label,
            size: bytes,
            elapsed: Some(elapsed),
            failure: None,
        });
    }

    fn fail(&mut self, id: u64, reason: String) {
        let entry = self.remove(id);
        self.tally.failed += 1;
        self.json(Record {
            event: "failed",
            id: Some(id),
            client: entry.peer.map(|p| p.to_string()),
            name: entry.name.as_deref(),
            size: entry.started.map(|_| entry.size),
            bytes: entry.started.map(|_| entry.bytes),
            reason: Some(&reason),
            ..Record::default()
        });
        let label = entry.label();
        self.print_outcome(false, "failed", format!("{label}  {reason}"));
        self.outcomes.push(Outcome {
            label,
            size: entry.size,
            elapsed: None,
            failure: Some(reason),
        });
    }

    fn remove(&mut self, id: u64) -> Entry {
        let mut entry = self
            .entries
            .remove(&id)
            .unwrap_or_else(|| Entry::new(None, None));
        if let Some(counter) = &entry.counter {
            let bytes = counter.get();
            self.tally.bytes += bytes.saturating_sub(entry.bytes);
            entry.bytes = bytes;
        }
        if let (Some(bar), Some(bars)) = (&entry.bar, &self.bars) {
            retire(bar, &bars.multi);
        }
        entry
    }

    fn json(&self, mut record: Record<'_>) {
        if self.output == Output::Json {
            record.t = (self.began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            json::emit(&record);
        }
    }

    fn print_outcome(&self, ok: bool, verb: &str, line: String) {
        let text = match self.output {
            Output::Plain => format!("{verb:<9} {line}"),
            Output::Bars if ok => format!("{} {line}", style("✓").green().bold()),
            Output::Bars => format!("{} {line}", style("✗").red().bold()),
            Output::Json | Output::Quiet => return,
        };
        self.print(text);
    }

    fn print(&self, line: String) {
        match (&self.bars, self.output) {
            (Some(bars), _) => {
                let _ = bars.multi.println(line);
            }
            (None, Output::Plain) => super::say_line(line),
            (None, _) => {}
        }
    }

    /// Reads byte counts, reports progress in JSON, gives bars to as many uploads
    /// as the terminal has rows for, and updates the footer.
    pub fn refresh(&mut self) {
        let json = self.output == Output::Json;
        let mut reports = Vec::new();
        for (id, entry) in self.entries.iter_mut() {
            let Some(counter) = &entry.counter else {
                continue;
            };
            let bytes = counter.get();
            self.tally.bytes += bytes.saturating_sub(entry.bytes);
            entry.bytes = bytes;
            if let Some(bar) = &entry.bar {
                bar.set_position(bytes);
            }
            if json && entry.reported.elapsed() >= JSON_PROGRESS_EVERY {
                entry.reported = Instant::now();
                reports.push((*id, entry.peer, entry.name.clone(), entry.size, bytes));
            }
        }
        for (id, peer, name, size, bytes) in reports {
            self.json(Record {
                event: "progress",
                id: Some(id),
                client: peer.map(|p| p.to_string()),
                name: name.as_deref(),
                size: Some(size),
                bytes: Some(bytes),
                ..Record::default()
            });
        }
        self.draw();
    }

    fn draw(&mut self) {
        let Some(bars) = &mut self.bars else { return };
        let (rows, cols) = Term::stderr().size();
        let room = (rows as usize).saturating_sub(RESERVED_ROWS).max(1);
        let label_width = LABEL_WIDTH.min((cols as usize / 3).max(12));
        self.label_width = label_width;
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
                    let bar = new_bar(entry, self.side, label_width);
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
                    retire(&bar, &bars.multi);
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
                let more = hidden_bar(None).with_style(template("{msg}"));
                let more = bars.multi.insert_before(&bars.footer, more);
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

    pub fn close(mut self) -> Tally {
        if let Some(bars) = self.bars.take() {
            for entry in self.entries.values() {
                if let Some(bar) = &entry.bar {
                    retire(bar, &bars.multi);
                }
            }
            if let Some(more) = &bars.more {
                more.finish_and_clear();
            }
            bars.footer.finish_and_clear();
            let _ = bars.multi.clear();
            if self.side == Side::Send && self.outcomes.len() > 1 {
                print_table(&self.outcomes);
            }
        }
        self.tally
    }
}

/// The sender's final table, one row per file, for the terminal.
fn print_table(outcomes: &[Outcome]) {
    let width = outcomes
        .iter()
        .map(|o| console::measure_text_width(&o.label))
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    crate::say!(
        "{}",
        style(format!(
            "{:<width$}  {:>10}  {:>7}  {:>12}  result",
            "file", "size", "time", "rate"
        ))
        .bold()
    );
    for o in outcomes {
        let label = console::pad_str(&o.label, width, console::Alignment::Left, Some("…"));
        match (&o.failure, o.elapsed) {
            (None, Some(elapsed)) => crate::say!(
                "{label}  {:>10}  {:>7}  {:>10}/s  {}",
                HumanBytes(o.size).to_string(),
                seconds(elapsed),
                per_second(o.size, elapsed),
                style("sent").green()
            ),
            (failure, _) => crate::say!(
                "{label}  {:>10}  {:>7}  {:>12}  {} {}",
                "",
                "",
                "",
                style("failed:").red(),
                failure.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Takes a bar off the screen for good: its spinner is stopped first, so that it
/// cannot draw once more into a row that a new bar may get.
fn retire(bar: &ProgressBar, multi: &MultiProgress) {
    bar.disable_steady_tick();
    bar.finish_and_clear();
    multi.remove(bar);
}

/// A bar that draws nothing until it joins the MultiProgress: one drawn before
/// would write straight to the terminal and tear the screen.
fn hidden_bar(len: Option<u64>) -> ProgressBar {
    ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
}

fn new_bar(entry: &Entry, side: Side, label_width: usize) -> ProgressBar {
    let bar = match entry.started {
        Some(started) => {
            let bar = hidden_bar(Some(entry.size)).with_style(style_upload(label_width));
            bar.set_position(entry.bytes);
            bar.set_elapsed(started.elapsed());
            bar
        }
        None => {
            let bar =
                hidden_bar(None).with_style(template("{prefix} {spinner:.yellow} {msg:.yellow}"));
            bar.set_message(match side {
                Side::Serve => "waiting for a free worker",
                Side::Send => "waiting for go ahead",
            });
            bar
        }
    };
    bar.set_prefix(console::truncate_str(&entry.label(), label_width, "…").into_owned());
    bar
}

fn template(text: &str) -> ProgressStyle {
    ProgressStyle::with_template(text).expect("valid progress template")
}

fn style_upload(label_width: usize) -> ProgressStyle {
    template(&format!(
        "{{prefix:{label_width}}} {{wide_bar:.cyan/blue}} {{bytes:>10}}/{{total_bytes:<10}} {{percent:>3}}% \
         {{binary_bytes_per_sec:>12}} {{elapsed:>4}} ETA {{eta:>3}}"
    ))
    .progress_chars("█▉▊▋▌▍▎▏░")
}

fn style_overall() -> ProgressStyle {
    template("{prefix:.bold} {msg:<14} {wide_bar:.green/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>3}")
        .progress_chars("█▉▊▋▌▍▎▏░")
}

/// Bytes per second over the last few seconds, given the running total.
fn recent_rate(samples: &mut VecDeque<(Instant, u64)>, total: u64) -> u64 {
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

/// A rate as people read it: `3.87 MiB`, to which callers add `/s`.
fn per_second(bytes: u64, elapsed: Duration) -> HumanBytes {
    HumanBytes((bytes as f64 / elapsed.as_secs_f64().max(1e-6)) as u64)
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
    fn labels_show_what_is_known() {
        let peer = Some("10.0.0.2:5000".parse().unwrap());
        assert_eq!(
            Entry::new(peer, Some("a.txt".into())).label(),
            "10.0.0.2:5000  a.txt"
        );
        assert_eq!(Entry::new(peer, None).label(), "10.0.0.2:5000");
        assert_eq!(Entry::new(None, Some("a.txt".into())).label(), "a.txt");
    }
}
