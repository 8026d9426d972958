//! Words both human modes (bars and plain lines) use: labels, outcome lines, the summary and the sender's final table.

use std::fmt::Write as _;

use console::style;
use indicatif::HumanBytes;

use super::{Side, Summary, Upload};
use crate::outcome::{Done, Kept};
use crate::term::{human_duration, human_rate};

/// What a person reads for an upload: `client  name` on the server, the name sent on the sender.
pub(super) fn label(upload: &Upload) -> String {
    match (&upload.peer, &upload.name) {
        (Some(peer), Some(name)) => format!("{peer}  {name}"),
        (Some(peer), None) => peer.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => String::from("?"),
    }
}

/// The word for a finished upload.
pub(super) fn verb(kept: &Kept) -> &'static str {
    match kept {
        Kept::Saved { .. } => "saved",
        Kept::Delivered { .. } => "delivered",
    }
}

/// `LABEL  SIZE  in TIME (RATE)[  saved as NAME][  the server said: ...]`
pub(super) fn finished_line(label: &str, done: &Done) -> String {
    if all_there(done) {
        // Nothing moved: no time or rate to tell.
        return format!("{label}  {}", HumanBytes(done.bytes))
            + &resumed_note(done)
            + &kept_note(&done.kept);
    }
    // The rate of what moved this time: a resumed file's first bytes were there already.
    let moved = done.bytes.saturating_sub(done.resumed_from);
    let mut line = format!(
        "{label}  {}  in {} ({})",
        HumanBytes(done.bytes),
        human_duration(done.elapsed),
        human_rate(moved, done.elapsed)
    );
    line.push_str(&resumed_note(done));
    line.push_str(&kept_note(&done.kept));
    line
}

/// Whether every byte of the file was there already (PROTOCOL.md B5b): nothing moved.
fn all_there(done: &Done) -> bool {
    done.resumed_from > 0 && done.resumed_from >= done.bytes
}

/// Where a resumed file took up again (PROTOCOL.md B8), that it was all
/// there already (B5b), or nothing.
fn resumed_note(done: &Done) -> String {
    if all_there(done) {
        "  already there".to_string()
    } else if done.resumed_from > 0 {
        format!("  resumed at {}", HumanBytes(done.resumed_from))
    } else {
        String::new()
    }
}

/// What is worth adding about how a file was kept: another name, or what a classroom server said.
fn kept_note(kept: &Kept) -> String {
    match kept {
        Kept::Saved {
            saved_as: Some(name),
        } => format!("  saved as {name}"),
        Kept::Delivered { said: Some(said) } => format!("  the server said: {said}"),
        _ => String::new(),
    }
}

/// The last lines of a run.
pub(super) fn summary_lines(side: Side, summary: &Summary) -> Vec<String> {
    let t = summary.tally;
    let elapsed = human_duration(summary.elapsed);
    match side {
        Side::Serve => vec![format!(
            "ftx: stopped after {elapsed}: {} saved, {} failed, {} received",
            t.saved,
            t.failed,
            HumanBytes(t.bytes)
        )],
        Side::Send => {
            let mut counts = Vec::new();
            if t.saved > 0 || t.delivered == 0 {
                counts.push(format!("{} saved", t.saved));
            }
            if t.delivered > 0 {
                counts.push(format!("{} delivered", t.delivered));
            }
            counts.push(format!("{} failed", t.failed));
            let to = summary
                .to
                .as_deref()
                .map(|to| format!(" to {to}"))
                .unwrap_or_default();
            // Bytes the server held already (resumed, or there before): the rate is of what moved.
            let held: u64 = summary
                .files
                .iter()
                .filter_map(|f| f.result.as_ref().ok())
                .map(|done| done.resumed_from.min(done.bytes))
                .sum();
            let there = if held > 0 {
                format!(" ({} of it on the server already)", HumanBytes(held))
            } else {
                String::new()
            };
            let mut lines = vec![format!(
                "{}: {}{there} in {elapsed} ({}){to}",
                counts.join(", "),
                HumanBytes(t.bytes),
                human_rate(t.bytes.saturating_sub(held), summary.elapsed)
            )];
            if t.delivered > 0 {
                lines.push(format!(
                    "  delivered: the server took every byte and closed the connection cleanly, but it is not ftx \
                     and sends no receipt, so whether it kept {} cannot be known from here",
                    if t.delivered == 1 { "the file" } else { "the files" }
                ));
            }
            lines
        }
    }
}

/// The sender's final table: one row per file in the order given, columns that line up.
pub(super) fn table(summary: &Summary, width: usize) -> Vec<String> {
    let name_width = summary
        .files
        .iter()
        .map(|f| console::measure_text_width(&f.name))
        .max()
        .unwrap_or(4)
        .clamp(4, (width / 3).max(12));
    // Columns go, rate first, rather than rows wrap.
    let fixed = name_width + 2 + 9 + 2 + 10;
    let (time, rate) = (fixed + 9 <= width, fixed + 9 + 14 <= width);
    let columns = |size: &str, elapsed: &str, per_second: &str| {
        let mut text = format!("{size:>10}");
        if time {
            let _ = write!(text, "  {elapsed:>7}");
        }
        if rate {
            let _ = write!(text, "  {per_second:>12}");
        }
        text
    };
    let mut lines = vec![style(format!(
        "{:<name_width$}  {:<9}  {}",
        "file",
        "result",
        columns("size", "time", "rate")
    ))
    .bold()
    .to_string()];
    for file in &summary.files {
        let name = console::pad_str(&file.name, name_width, console::Alignment::Left, Some("…"));
        let mut row = match &file.result {
            Ok(done) => format!(
                "{name}  {}  {}{}",
                console::pad_str(
                    &style(verb(&done.kept)).green().to_string(),
                    9,
                    console::Alignment::Left,
                    None
                ),
                match all_there(done) {
                    true => columns(&HumanBytes(done.bytes).to_string(), "", ""),
                    false => columns(
                        &HumanBytes(done.bytes).to_string(),
                        &human_duration(done.elapsed),
                        &human_rate(done.bytes.saturating_sub(done.resumed_from), done.elapsed)
                    ),
                },
                resumed_note(done) + &kept_note(&done.kept)
            ),
            Err(reason) => format!("{name}  {}  {reason}", style("failed   ").red()),
        };
        if let Some(original) = &file.renamed_from {
            let _ = write!(
                row,
                "  (renamed: another file here is also called {original})"
            );
        }
        lines.push(console::truncate_str(&row, width, "…").into_owned());
    }
    lines
}
