//! Live bars on a terminal: one per upload in flight (as many as there are rows), waiting clients, a footer, lines for outcomes.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use console::{style, Term};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::human;
use super::screen::{Screen, CLEAR_SCREEN};
use super::{Event, Heading, Live, Plan, Side, Sink, Summary, Tracked};
use crate::term::{say_line, say_wrapped, Bytes};

/// A line printed above the bars, laid out for a width: it is laid out again
/// when the screen is painted afresh after a resize.
type Line = Box<dyn Fn(usize) -> Vec<String> + Send>;

/// How many lines above the bars are kept to paint the screen again: more
/// rows than any screen has.
const KEPT_LINES: usize = 256;

/// How often indicatif may draw, per second.
const DRAWS_PER_SECOND: u8 = 20;

/// Screen rows kept for the footer and the "+N more" line.
const RESERVED_ROWS: usize = 3;

/// How far back the footer's rate looks: it falls to 0 within this of the last byte.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Widest label (client address and name) a bar shows.
const LABEL_WIDTH: usize = 44;

/// What fits on one row at a terminal's width: columns are dropped, never a bar wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    cols: usize,
    label_width: usize,
    /// Bytes, percent, rate, elapsed and ETA (wide); bytes, percent and ETA; or percent and ETA (narrow).
    columns: Columns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Columns {
    All,
    NoRate,
    Narrow,
}

impl Layout {
    fn for_width(cols: usize) -> Layout {
        Layout {
            cols,
            label_width: if cols >= 76 {
                LABEL_WIDTH.min(cols / 3)
            } else {
                // Percent and ETA take 14 columns, the bar at least 8.
                cols.saturating_sub(22).clamp(12, LABEL_WIDTH)
            },
            columns: if cols >= 110 {
                Columns::All
            } else if cols >= 76 {
                Columns::NoRate
            } else {
                Columns::Narrow
            },
        }
    }
}

/// Bars on stderr, drawn through one `MultiProgress`.
pub(super) struct Bars {
    side: Side,
    multi: MultiProgress,
    /// The total bar (sender of several files) or the counts line (server); none for one file.
    footer: Option<ProgressBar>,
    more: Option<ProgressBar>,
    /// The bar of each upload that has one; the others are counted in "+N more".
    rows: HashMap<u64, ProgressBar>,
    /// What fits the terminal now.
    layout: Layout,
    /// Bytes so far over the last second, for a rate that tells the truth now rather than on average.
    recent: Recent,
    /// Lines to print above the bars, gathered while more events wait: each
    /// print redraws every bar, and a batch of small files ends thousands of
    /// uploads a second.
    lines: Vec<Line>,
    /// What the screen shows above the bars: the heading (the server's
    /// banner) and the last lines printed, to paint it again after a resize.
    heading: Option<Heading>,
    kept: VecDeque<Line>,
    /// The terminal's size (rows, columns) at the last tick, and a flag any
    /// drawing sets when it finds the size changed.
    size: (u16, u16),
    resized: Arc<AtomicBool>,
    /// Uploads all sent and waiting for the server's word.
    sent: std::collections::HashSet<u64>,
    /// Batches that ended in the last [`BATCH_MERGE_WINDOW`], not printed
    /// yet: several that fill one folder from one client end together and
    /// get one line.
    batches: Vec<(Instant, Merged)>,
}

/// How long the line of a batch waits for other batches of its folder.
const BATCH_MERGE_WINDOW: Duration = Duration::from_millis(500);

/// Batches of one client into the same folders, told as one.
struct Merged {
    batch: super::BatchEnded,
    connections: u64,
}

impl Merged {
    /// Whether `batch` fills the same folders from the same machine.
    fn takes(&self, batch: &super::BatchEnded) -> bool {
        !batch.into.is_empty()
            && batch.into == self.batch.into
            && batch.peer.ip() == self.batch.peer.ip()
    }

    /// Counts `batch` in: the batches ran side by side, so the time is the longest.
    fn add(&mut self, batch: &super::BatchEnded) {
        let merged = &mut self.batch;
        merged.saved += batch.saved;
        merged.failed += batch.failed;
        merged.bytes += batch.bytes;
        merged.elapsed = merged.elapsed.max(batch.elapsed);
        self.connections += 1;
    }
}

impl Bars {
    pub fn new(side: Side, plan: Option<Plan>, heading: Option<Heading>) -> Bars {
        crate::term::quiet_echo();
        let screen = Screen::stderr();
        let resized = screen.resized_flag();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
            Box::new(screen),
            DRAWS_PER_SECOND,
        ));
        let footer = match plan {
            Some(plan) if plan.files > 1 => {
                let layout = Layout::for_width(usize::from(Term::stderr().size().1));
                let bar = hidden_bar(Some(plan.bytes)).with_style(style_overall(layout));
                Some(multi.add(bar))
            }
            Some(_) => None,
            None => Some(multi.add(hidden_bar(None).with_style(template("{msg}")))),
        };
        Bars {
            side,
            multi,
            footer,
            more: None,
            rows: HashMap::new(),
            layout: Layout::for_width(usize::from(Term::stderr().size().1)),
            recent: Recent::default(),
            lines: Vec::new(),
            batches: Vec::new(),
            heading,
            kept: VecDeque::new(),
            size: Term::stderr().size(),
            resized,
            sent: Default::default(),
        }
    }

    /// Prints `line` above the bars (with the next lines gathered), broken
    /// between words if it is wider than the terminal.
    fn print(&mut self, line: String) {
        self.print_laid_out(Box::new(move |width| crate::term::wrap(&line, width)));
    }

    fn print_laid_out(&mut self, line: Line) {
        self.lines.push(line);
    }

    /// Adds the line of each batch whose merging time is over (all with
    /// `all`) to the lines to print.
    fn batches_due(&mut self, all: bool) {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.batches)
            .into_iter()
            .partition(|(since, _)| all || since.elapsed() >= BATCH_MERGE_WINDOW);
        self.batches = waiting;
        for (_, merged) in due {
            self.print(format!(
                "{} {}",
                style("✓").green().bold(),
                human::batch_line(&merged.batch, merged.connections)
            ));
        }
    }

    /// Prints the lines gathered, above the bars, in one redraw.
    fn print_gathered(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        let width = usize::from(Term::stderr().size().1);
        let mut text = String::new();
        for row in self.lines.iter().flat_map(|line| line(width)) {
            text.push_str(&row);
            text.push_str("\r\n");
        }
        self.above_bars(&text);
        self.kept.extend(self.lines.drain(..));
        let extra = self.kept.len().saturating_sub(KEPT_LINES);
        self.kept.drain(..extra);
    }

    /// Clears the screen and paints it afresh: the heading and the last lines
    /// printed, laid out for the terminal's size now, then the bars. After a
    /// resize, what the terminal reflowed is in rows the bars' redraw does
    /// not know of: copies of bars would stay, lines would be lost.
    fn repaint(&mut self) {
        let (rows, cols) = self.size;
        let width = usize::from(cols);
        let live =
            self.rows.len() + usize::from(self.more.is_some()) + usize::from(self.footer.is_some());
        let mut above: Vec<String> = self.heading.iter().flat_map(|h| h(width)).collect();
        above.extend(self.kept.iter().flat_map(|line| line(width)));
        let skip = above
            .len()
            .saturating_sub(usize::from(rows).saturating_sub(live));
        let mut out = String::from(CLEAR_SCREEN);
        for line in &above[skip..] {
            out.push_str(line);
            out.push_str("\r\n");
        }
        self.above_bars(&out);
    }

    /// Writes `text` (whole lines) where the bars are, and the bars again below it.
    /// (indicatif's own `println` leaves the cursor at the end of the last
    /// line, for the terminal's auto-wrap to take it to the next row, which
    /// [`Screen`] does not use.)
    fn above_bars(&self, text: &str) {
        self.multi.suspend(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(text.as_bytes());
            let _ = stderr.flush();
        });
    }

    /// Turns a waiting line into the upload's bar in place. Removing it and
    /// adding a new one would free its row while its spinner may still draw there once more.
    fn start(&mut self, id: u64, upload: &Tracked) {
        if let Some(bar) = self.rows.get(&id) {
            bar.disable_steady_tick();
            bar.set_style(style_upload(self.layout));
            bar.set_length(upload.size);
            // A resumed file starts where it stopped: those bytes are not
            // counted in its rate (the estimator takes them as its start).
            bar.set_position(upload.resumed);
            bar.tick();
            bar.reset_elapsed();
            bar.reset_eta();
            bar.set_message(resuming(upload));
            bar.set_prefix(prefix(upload, self.layout));
        }
    }

    fn end(&mut self, id: u64) {
        self.sent.remove(&id);
        if let Some(bar) = self.rows.remove(&id) {
            retire(&bar, &self.multi);
        }
    }

    /// Gives bars to as many uploads as the terminal has rows for, in-progress
    /// ones first, and updates positions and the footer.
    fn draw(&mut self, live: &Live) {
        let (rows, cols) = Term::stderr().size();
        let resized = self.resized.swap(false, Ordering::Relaxed) || (rows, cols) != self.size;
        self.size = (rows, cols);
        let room = usize::from(rows).saturating_sub(RESERVED_ROWS).max(1);
        let layout = Layout::for_width(usize::from(cols));
        if layout != self.layout {
            self.relayout(layout, live);
        }
        let first_waiting = live
            .uploads
            .iter()
            .filter(|(_, u)| u.started.is_none())
            .find_map(|(id, _)| self.rows.get(id).cloned());
        let (active, waiting): (Vec<_>, Vec<_>) =
            live.uploads.iter().partition(|(_, u)| u.started.is_some());
        let mut shown = 0;
        let mut hidden = 0;
        for (id, upload) in active.into_iter().chain(waiting) {
            if shown >= room {
                hidden += 1;
                self.end(*id);
                continue;
            }
            shown += 1;
            if let Some(bar) = self.rows.get(id) {
                if upload.started.is_some() {
                    bar.set_position(upload.bytes);
                }
                continue;
            }
            let bar = new_bar(upload, self.side, self.layout);
            let anchor = match (&first_waiting, &self.more, &self.footer) {
                (Some(waiting), _, _) if upload.started.is_some() => Some(waiting),
                (_, Some(more), _) => Some(more),
                (_, _, footer) => footer.as_ref(),
            };
            let bar = match anchor {
                Some(anchor) => self.multi.insert_before(anchor, bar),
                None => self.multi.add(bar),
            };
            if upload.started.is_none() {
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            self.rows.insert(*id, bar);
        }
        self.draw_more(hidden);
        self.draw_footer(live);
        if resized {
            self.repaint();
        }
    }

    fn draw_more(&mut self, hidden: usize) {
        match (&self.more, hidden) {
            (Some(more), 0) => {
                retire(more, &self.multi);
                self.more = None;
            }
            (Some(more), n) => more.set_message(format!("  +{n} more")),
            (None, 0) => {}
            (None, n) => {
                let more = hidden_bar(None).with_style(template("{msg}"));
                let more = match &self.footer {
                    Some(footer) => self.multi.insert_before(footer, more),
                    None => self.multi.add(more),
                };
                more.set_message(format!("  +{n} more"));
                self.more = Some(more);
            }
        }
    }

    /// The terminal changed width: every bar gets the columns that fit now.
    fn relayout(&mut self, layout: Layout, live: &Live) {
        self.layout = layout;
        for (id, bar) in &self.rows {
            if let Some(upload) = live.uploads.get(id) {
                if self.sent.contains(id) {
                    bar.set_message(all_sent(Some(upload), layout));
                } else if upload.started.is_some() {
                    bar.set_style(style_upload(layout));
                } else {
                    bar.set_message(waiting_for(upload, self.side, layout));
                }
                bar.set_prefix(prefix(upload, layout));
            }
        }
        if let (Some(footer), Some(_)) = (&self.footer, live.plan) {
            footer.set_style(style_overall(layout));
        }
    }

    fn draw_footer(&mut self, live: &Live) {
        let Some(footer) = &self.footer else { return };
        let shown = live.shown;
        let bytes = live.bytes_shown();
        self.recent.note(Instant::now(), bytes);
        let rate = self.recent.per_second(bytes).unwrap_or(0);
        match live.plan {
            Some(plan) => {
                footer.set_position(bytes);
                let failed = if shown.failed > 0 {
                    format!(", {} failed", style(shown.failed).red())
                } else {
                    String::new()
                };
                let eta = overall_eta(live, plan.bytes.saturating_sub(bytes), rate).map_or_else(
                    || "ETA  ?".to_string(),
                    |eta| format!("ETA {}", short_duration(eta)),
                );
                footer.set_message(format!(
                    "{}/{} files{failed}",
                    shown.done() + shown.failed,
                    plan.files
                ));
                footer.set_prefix(eta);
            }
            None => {
                let (active, waiting, connecting) = live.stages();
                let mut parts = vec![
                    format!("{} active", style(active).cyan().bold()),
                    format!("{} waiting", style(waiting).yellow()),
                ];
                if connecting > 0 {
                    parts.push(format!("{connecting} sending a header"));
                }
                parts.push(format!("{} saved", style(shown.saved).green()));
                parts.push(if shown.failed > 0 {
                    format!("{} failed", style(shown.failed).red())
                } else {
                    "0 failed".to_string()
                });
                parts.push(format!("{} received ({}/s)", Bytes(bytes), Bytes(rate)));
                // Whole parts only, as many as fit: a footer that wraps tears the screen.
                let mut line = String::new();
                for part in parts {
                    let next = if line.is_empty() {
                        part
                    } else {
                        format!("{line} · {part}")
                    };
                    if console::measure_text_width(&next) >= self.layout.cols {
                        break;
                    }
                    line = next;
                }
                footer.set_message(line);
            }
        }
    }

    /// Takes every bar off the screen for good.
    fn clear(&mut self) {
        for (_, bar) in self.rows.drain() {
            retire(&bar, &self.multi);
        }
        if let Some(more) = self.more.take() {
            retire(&more, &self.multi);
        }
        if let Some(footer) = self.footer.take() {
            retire(&footer, &self.multi);
        }
        let _ = self.multi.clear();
        crate::term::restore_terminal();
    }
}

impl Sink for Bars {
    fn event(&mut self, event: &Event, ended: Option<&Tracked>, live: &Live) {
        match event {
            Event::Started { id, .. } => {
                if let Some(upload) = live.uploads.get(id) {
                    self.start(*id, upload);
                }
            }
            Event::Finished { id, done } => {
                self.end(*id);
                // The sender's table says it at the end; the server's log has a line per
                // upload, but for a small file of a folder: its batch's line counts it.
                let shown = ended.filter(|u| !u.is_counted_in_its_batch());
                if let (Some(upload), Side::Serve) = (shown, self.side) {
                    let (upload, done) = (kept_copy(upload), done.clone());
                    self.print_laid_out(Box::new(move |width| {
                        vec![format!(
                            "{} {}",
                            style("✓").green().bold(),
                            human::finished_line_in(&upload, &done, true, width.saturating_sub(3))
                        )]
                    }));
                }
            }
            Event::Failed { id, reason } => {
                self.end(*id);
                if let Some(upload) = ended {
                    let (upload, reason) = (kept_copy(upload), reason.clone());
                    // The label kept whole if it fits; the reason follows, broken between words.
                    self.print_laid_out(Box::new(move |width| {
                        let line = format!(
                            "{} {}  {reason}",
                            style("✗").red().bold(),
                            human::label_in(&upload, width.saturating_sub(4))
                        );
                        crate::term::wrap(&line, width)
                    }));
                }
            }
            Event::Trace { text, .. } => self.print(format!("{} {text}", style("trace").dim())),
            Event::Notice(text) => self.print(text.clone()),
            Event::Queued { id, .. } => {
                if let (Some(bar), Some(upload)) = (self.rows.get(id), live.uploads.get(id)) {
                    bar.set_message(waiting_for(upload, self.side, self.layout));
                    bar.set_prefix(prefix(upload, self.layout));
                }
            }
            Event::Sent { id } => {
                self.sent.insert(*id);
                if let Some(bar) = self.rows.get(id) {
                    bar.set_style(template("{prefix} {spinner:.cyan} {msg:.cyan}"));
                    bar.set_message(all_sent(live.uploads.get(id), self.layout));
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            }
            Event::Closed { id } => self.end(*id),
            Event::BatchEnded(batch) if batch.saved > 0 => {
                match self.batches.iter_mut().find(|(_, m)| m.takes(batch)) {
                    Some((_, merged)) => merged.add(batch),
                    None => self.batches.push((
                        Instant::now(),
                        Merged {
                            batch: batch.clone(),
                            connections: 1,
                        },
                    )),
                }
            }
            Event::BatchEnded(_) => {}
            Event::Listening { .. }
            | Event::Connected { .. }
            | Event::Summary(_)
            | Event::Interrupted { .. } => {}
        }
    }

    fn tick(&mut self, live: &Live) {
        self.batches_due(false);
        self.print_gathered();
        self.draw(live);
    }

    fn idle(&mut self) {
        self.print_gathered();
    }

    fn summary(&mut self, summary: &Summary, _live: &Live) {
        self.batches_due(true);
        self.print_gathered();
        self.clear();
        if self.side == Side::Send {
            let width = usize::from(Term::stderr().size().1);
            match summary.files.as_slice() {
                [one] => {
                    if let Ok(done) = &one.result {
                        let line = format!(
                            "{} {} {}",
                            style("✓").green().bold(),
                            human::verb(&done.kept),
                            human::finished_line(&one.name, done, true)
                        );
                        say_wrapped(&line, width);
                    }
                    for (name, why) in human::cut_short(summary) {
                        say_line(format!("{} {name}  {why}", style("✗").red().bold()));
                    }
                }
                files if files.len() > 1 => {
                    for line in human::table(summary, width) {
                        say_line(line);
                    }
                }
                _ => {}
            }
        }
        let width = usize::from(Term::stderr().size().1);
        for line in human::summary_lines(self.side, summary) {
            say_wrapped(&line, width);
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

/// A bar that draws nothing until it joins the `MultiProgress`: one drawn before
/// would write straight to the terminal and tear the screen.
fn hidden_bar(len: Option<u64>) -> ProgressBar {
    ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
}

fn new_bar(upload: &Tracked, side: Side, layout: Layout) -> ProgressBar {
    let bar = if let Some(started) = upload.started {
        let bar = hidden_bar(Some(upload.size)).with_style(style_upload(layout));
        // From where it started (a resumed file: where it stopped), so that
        // the rate counts what came since; the next draw moves it on.
        bar.set_position(upload.resumed);
        bar.tick();
        bar.reset_eta();
        bar.set_elapsed(started.elapsed());
        bar.set_message(resuming(upload));
        bar
    } else {
        let bar = hidden_bar(None).with_style(template("{prefix} {spinner:.yellow} {msg:.yellow}"));
        bar.set_message(waiting_for(upload, side, layout));
        bar
    };
    bar.set_prefix(prefix(upload, layout));
    bar
}

/// A bar's prefix: its label shortened to the width the layout gives it
/// (the port, then most of the address go, then the name is cut in the middle).
fn prefix(upload: &Tracked, layout: Layout) -> String {
    human::label_in(upload, layout.label_width)
}

/// What is kept of an upload for a line that may be laid out again: no
/// counter, no socket (those go with the upload).
fn kept_copy(upload: &Tracked) -> Tracked {
    Tracked {
        counter: None,
        socket: None,
        ..upload.clone()
    }
}

/// What a resumed upload's bar says after its columns, from its first
/// byte: where it took up again (PROTOCOL.md B8).
fn resuming(upload: &Tracked) -> String {
    match upload.resumed {
        0 => String::new(),
        at => format!("  resuming at {}", Bytes(at)),
    }
}

/// What a waiting upload waits for, in words that fit beside its label.
fn waiting_for(upload: &Tracked, side: Side, layout: Layout) -> String {
    let (long, short) = match (side, &upload.name) {
        (Side::Serve, Some(_)) => ("waiting for a free worker", "waiting for a worker"),
        (Side::Serve, None) => ("connected, waiting for its header", "waiting for a header"),
        (Side::Send, _) => ("waiting for go ahead", "waiting"),
    };
    message_in(long, short, layout)
}

/// What a file all sent waits for.
fn all_sent(upload: Option<&Tracked>, layout: Layout) -> String {
    match upload.map_or(0, |u| u.resumed) {
        0 => message_in(
            "all sent, waiting for the server to confirm",
            "all sent, confirming",
            layout,
        ),
        // A resumed file says so until its end, however soon its bytes were all sent.
        at => message_in(
            &format!(
                "all sent (resumed at {}), waiting for the server to confirm",
                Bytes(at)
            ),
            &format!("all sent (resumed at {})", Bytes(at)),
            layout,
        ),
    }
}

/// `long` if it fits after the label and the spinner, else `short`, cut if need be.
fn message_in(long: &str, short: &str, layout: Layout) -> String {
    let room = layout.cols.saturating_sub(layout.label_width + 4);
    if long.chars().count() <= room {
        long.to_string()
    } else {
        console::truncate_str(short, room, "…").into_owned()
    }
}

fn template(text: &str) -> ProgressStyle {
    ProgressStyle::with_template(text).expect("valid progress template")
}

fn style_upload(layout: Layout) -> ProgressStyle {
    let label = layout.label_width;
    let columns = match layout.columns {
        Columns::All => {
            "{done:>10}/{total:<10} {percent:>3}% {rate:>12} {elapsed:>4} ETA {eta_known:>3}{msg}"
        }
        Columns::NoRate => "{done:>10}/{total:<10} {percent:>3}% ETA {eta_known:>3}{msg}",
        Columns::Narrow => "{percent:>3}% ETA {eta_known:>3}",
    };
    sizes(template(&format!(
        "{{prefix:{label}}} {{wide_bar:.cyan/blue}} {columns}"
    )))
    .with_key("eta_known", RecentRate::showing(Shown::Eta))
    .progress_chars("█▉▊▋▌▍▎▏░")
}

/// `{done}`, `{total}` and `{rate}`: indicatif's byte counts and rate in [`Bytes`].
fn sizes(style: ProgressStyle) -> ProgressStyle {
    style
        .with_key(
            "done",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", Bytes(state.pos()));
            },
        )
        .with_key(
            "total",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", Bytes(state.len().unwrap_or(0)));
            },
        )
        .with_key("rate", RecentRate::showing(Shown::Rate))
}

/// A bar's rate (`{rate}`) or remaining time (`{eta_known}`) from what it
/// moved over the last [`RATE_WINDOW`]: indicatif's own estimate weighs the
/// first instants for many seconds (a file paced at 4 MiB/s read 6.14 MiB/s
/// after a second, 4.32 after six), and says `0s` before the first byte.
#[derive(Debug, Clone)]
struct RecentRate {
    shown: Shown,
    recent: Recent,
}

#[derive(Debug, Clone, Copy)]
enum Shown {
    Rate,
    Eta,
}

impl RecentRate {
    fn showing(shown: Shown) -> RecentRate {
        RecentRate {
            shown,
            recent: Recent::default(),
        }
    }
}

/// Positions over the last [`RATE_WINDOW`] (a bar's, the footer's bytes).
#[derive(Debug, Clone, Default)]
struct Recent {
    /// (when, position), oldest first; one sample older than the window is kept.
    samples: VecDeque<(Instant, u64)>,
}

impl Recent {
    fn note(&mut self, now: Instant, pos: u64) {
        self.samples.push_back((now, pos));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Bytes a second from the oldest sample kept to `pos` now; `None` until
    /// 200 ms have passed since it (too short to tell by).
    fn per_second(&self, pos: u64) -> Option<u64> {
        let (then, before) = *self.samples.front()?;
        let elapsed = then.elapsed();
        (elapsed >= Duration::from_millis(200))
            .then(|| crate::term::bytes_per_second(pos.saturating_sub(before), elapsed))
    }
}

impl indicatif::style::ProgressTracker for RecentRate {
    fn clone_box(&self) -> Box<dyn indicatif::style::ProgressTracker> {
        Box::new(self.clone())
    }

    fn tick(&mut self, state: &indicatif::ProgressState, now: Instant) {
        self.recent.note(now, state.pos());
    }

    fn reset(&mut self, _: &indicatif::ProgressState, _: Instant) {
        self.recent = Recent::default();
    }

    fn write(&self, state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
        let rate = self.recent.per_second(state.pos());
        let _ = match (self.shown, rate) {
            (Shown::Rate, rate) => write!(out, "{}/s", Bytes(rate.unwrap_or(0))),
            (Shown::Eta, _) if state.len().is_some_and(|len| state.pos() >= len) => {
                write!(out, "0s")
            }
            (Shown::Eta, Some(rate)) if rate > 0 => {
                let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                let eta = Duration::from_millis(left.saturating_mul(1000) / rate);
                write!(out, "{:#}", indicatif::HumanDuration(eta))
            }
            (Shown::Eta, _) => write!(out, "?"),
        };
    }
}

/// The sender's total: files done, bytes, rate, and an ETA of its own (in the prefix).
fn style_overall(layout: Layout) -> ProgressStyle {
    let columns = match layout.columns {
        Columns::All => "{done:>10}/{total:<10} {rate:>12} {prefix:>8}",
        Columns::NoRate => "{done:>10}/{total:<10} {prefix:>8}",
        Columns::Narrow => "{prefix:>8}",
    };
    sizes(template(&format!(
        "{{msg:<18.bold}} {{wide_bar:.green/blue}} {columns}"
    )))
    .progress_chars("█▉▊▋▌▍▎▏░")
}

/// The run's remaining time: never less than the slowest upload in progress
/// needs at its own pace, nor than what is left at the recent overall rate.
fn overall_eta(live: &Live, remaining: u64, rate: u64) -> Option<Duration> {
    let now = Instant::now();
    let uploads = live.uploads.values().filter_map(|u| {
        let started = u.started?;
        Some((
            u.size.saturating_sub(u.bytes),
            u.bytes,
            now.duration_since(started),
        ))
    });
    eta_of(uploads, remaining, rate)
}

/// See [`overall_eta`]: `uploads` are (bytes left, bytes done, time since `go ahead`).
fn eta_of(
    uploads: impl Iterator<Item = (u64, u64, Duration)>,
    remaining: u64,
    rate: u64,
) -> Option<Duration> {
    let at = |bytes: u64, per_second: u64| {
        (per_second > 0).then(|| Duration::from_millis(bytes.saturating_mul(1000) / per_second))
    };
    let mut eta = at(remaining, rate);
    for (left, done, elapsed) in uploads {
        if elapsed < Duration::from_millis(300) || done == 0 {
            continue;
        }
        let own = at(left, crate::term::bytes_per_second(done, elapsed));
        eta = eta.max(own);
    }
    if remaining == 0 {
        return Some(Duration::ZERO);
    }
    eta
}

/// `44s`, `3m05s`, `2h10m`.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_never_less_than_the_slowest_upload_needs() {
        let secs = Duration::from_secs;
        // The run as a whole goes fast (1 MiB/s, 17 MiB left: 17 s), but one
        // upload has done 10 KiB in 10 s and has 44 KiB to go: 44 s.
        let uploads = [
            (44 * 1024, 10 * 1024, secs(10)),
            (1 << 20, 8 << 20, secs(8)),
        ];
        let eta = eta_of(uploads.into_iter(), 17 << 20, 1 << 20).unwrap();
        assert_eq!(eta, secs(44));
        // Without a slow one, the overall rate says it.
        let eta = eta_of([(1 << 20, 8 << 20, secs(8))].into_iter(), 17 << 20, 1 << 20).unwrap();
        assert_eq!(eta, secs(17));
        assert_eq!(eta_of(std::iter::empty(), 0, 0), Some(Duration::ZERO));
        assert_eq!(
            eta_of(std::iter::empty(), 5, 0),
            None,
            "no rate yet: unknown"
        );
    }

    #[test]
    fn narrow_terminals_drop_columns_before_a_bar_could_wrap() {
        assert_eq!(Layout::for_width(140).columns, Columns::All);
        assert_eq!(Layout::for_width(80).columns, Columns::NoRate);
        let narrow = Layout::for_width(60);
        assert_eq!((narrow.columns, narrow.label_width), (Columns::Narrow, 38));
        assert_eq!(Layout::for_width(40).label_width, 18);
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
    }
}
