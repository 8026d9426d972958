//! Live bars on a terminal: one per upload in flight (as many as there are rows), waiting clients, a footer, lines for outcomes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use console::{style, Term};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::human::{self, label};
use super::{Event, Live, Plan, Side, Sink, Summary, Upload};
use crate::term::say_line;

/// Screen rows kept for the footer and the "+N more" line.
const RESERVED_ROWS: usize = 3;

/// How far back the footer's rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Widest label (client address and name) a bar shows.
const LABEL_WIDTH: usize = 44;

/// Bars on stderr, drawn through one `MultiProgress`.
pub(super) struct Bars {
    side: Side,
    multi: MultiProgress,
    /// The total bar (sender of several files) or the counts line (server); none for one file.
    footer: Option<ProgressBar>,
    more: Option<ProgressBar>,
    /// The bar of each upload that has one; the others are counted in "+N more".
    rows: HashMap<u64, ProgressBar>,
    /// Widest label that fits the terminal now.
    label_width: usize,
    /// Recent (time, bytes so far) samples, for a rate that tells the truth now rather than on average.
    samples: VecDeque<(Instant, u64)>,
}

impl Bars {
    pub fn new(side: Side, plan: Option<Plan>) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let footer = match plan {
            Some(plan) if plan.files > 1 => {
                let bar = hidden_bar(Some(plan.bytes)).with_style(style_overall());
                bar.set_prefix("total");
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
            label_width: LABEL_WIDTH,
            samples: VecDeque::new(),
        }
    }

    fn print(&self, line: String) {
        let _ = self.multi.println(line);
    }

    /// Turns a waiting line into the upload's bar in place. Removing it and
    /// adding a new one would free its row while its spinner may still draw there once more.
    fn start(&mut self, id: u64, upload: &Upload) {
        if let Some(bar) = self.rows.get(&id) {
            bar.disable_steady_tick();
            bar.set_style(style_upload(self.label_width));
            bar.set_length(upload.size);
            bar.set_position(0);
            bar.reset_elapsed();
            bar.reset_eta();
            bar.set_prefix(
                console::truncate_str(&label(upload), self.label_width, "…").into_owned(),
            );
        }
    }

    fn end(&mut self, id: u64) {
        if let Some(bar) = self.rows.remove(&id) {
            retire(&bar, &self.multi);
        }
    }

    /// Gives bars to as many uploads as the terminal has rows for, in-progress
    /// ones first, and updates positions and the footer.
    fn draw(&mut self, live: &Live) {
        let (rows, cols) = Term::stderr().size();
        let room = usize::from(rows).saturating_sub(RESERVED_ROWS).max(1);
        self.label_width = LABEL_WIDTH.min((usize::from(cols) / 3).max(12));
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
            let bar = new_bar(upload, self.side, self.label_width);
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

    fn draw_footer(&mut self, live: &Live) {
        let Some(footer) = &self.footer else { return };
        let shown = live.shown;
        let bytes = live.bytes_shown();
        match live.plan {
            Some(plan) => {
                footer.set_position(bytes);
                let failed = if shown.failed > 0 {
                    format!(", {} failed", style(shown.failed).red())
                } else {
                    String::new()
                };
                footer.set_message(format!(
                    "{}/{} files{failed}",
                    shown.done() + shown.failed,
                    plan.files
                ));
            }
            None => {
                let (active, waiting, connecting) = live.stages();
                let rate = recent_rate(&mut self.samples, bytes);
                let connecting = if connecting > 0 {
                    format!(" · {connecting} sending a header")
                } else {
                    String::new()
                };
                footer.set_message(format!(
                    "{} active · {} waiting{connecting} · {} saved · {} failed · {} received ({}/s)",
                    style(active).cyan().bold(),
                    style(waiting).yellow(),
                    style(shown.saved).green(),
                    if shown.failed > 0 {
                        style(shown.failed).red()
                    } else {
                        style(shown.failed)
                    },
                    HumanBytes(bytes),
                    HumanBytes(rate),
                ));
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
    }
}

impl Sink for Bars {
    fn event(&mut self, event: &Event, ended: Option<&Upload>, live: &Live) {
        match event {
            Event::Started { id, .. } => {
                if let Some(upload) = live.uploads.get(id) {
                    self.start(*id, upload);
                }
            }
            Event::Finished { id, done } => {
                self.end(*id);
                // The sender's table says it at the end; the server's log has a line per upload.
                if let (Some(upload), Side::Serve) = (ended, self.side) {
                    self.print(format!(
                        "{} {}",
                        style("✓").green().bold(),
                        human::finished_line(&label(upload), done)
                    ));
                }
            }
            Event::Failed { id, reason } => {
                self.end(*id);
                if let Some(upload) = ended {
                    self.print(format!(
                        "{} {}  {reason}",
                        style("✗").red().bold(),
                        label(upload)
                    ));
                }
            }
            Event::Trace { text, .. } => self.print(format!("{} {text}", style("trace").dim())),
            Event::Notice(text) => self.print(text.clone()),
            Event::Queued { id, .. } => {
                if let (Some(bar), Some(upload)) = (self.rows.get(id), live.uploads.get(id)) {
                    bar.set_message(waiting_for(upload, self.side));
                    bar.set_prefix(
                        console::truncate_str(&label(upload), self.label_width, "…").into_owned(),
                    );
                }
            }
            Event::Listening { .. } | Event::Connected { .. } | Event::Summary(_) => {}
        }
        self.draw(live);
    }

    fn tick(&mut self, live: &Live) {
        self.draw(live);
    }

    fn summary(&mut self, summary: &Summary, _live: &Live) {
        self.clear();
        if self.side == Side::Send {
            let width = usize::from(Term::stderr().size().1);
            match summary.files.as_slice() {
                [one] => {
                    if let Ok(done) = &one.result {
                        say_line(format!(
                            "{} {} {}",
                            style("✓").green().bold(),
                            human::verb(&done.kept),
                            human::finished_line(&one.name, done)
                        ));
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
        for line in human::summary_lines(self.side, summary) {
            say_line(line);
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

fn new_bar(upload: &Upload, side: Side, label_width: usize) -> ProgressBar {
    let bar = if let Some(started) = upload.started {
        let bar = hidden_bar(Some(upload.size)).with_style(style_upload(label_width));
        bar.set_position(upload.bytes);
        bar.set_elapsed(started.elapsed());
        bar
    } else {
        let bar = hidden_bar(None).with_style(template("{prefix} {spinner:.yellow} {msg:.yellow}"));
        bar.set_message(waiting_for(upload, side));
        bar
    };
    bar.set_prefix(console::truncate_str(&label(upload), label_width, "…").into_owned());
    bar
}

/// What a waiting upload waits for, in words.
fn waiting_for(upload: &Upload, side: Side) -> &'static str {
    match (side, &upload.name) {
        (Side::Serve, Some(_)) => "waiting for a free worker",
        (Side::Serve, None) => "connected, waiting for its header",
        (Side::Send, _) => "waiting for go ahead",
    }
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
    let elapsed = now.duration_since(then);
    if elapsed < Duration::from_millis(200) {
        0
    } else {
        crate::term::bytes_per_second(total.saturating_sub(before), elapsed)
    }
}
