//! Words both human modes (bars and plain lines) use: labels, outcome lines, the summary and the sender's final table.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::term::Bytes;
use console::style;

use super::{BatchEnded, Side, Summary, Tracked};
use crate::outcome::{Done, FileReport, Kept};
use crate::term::{human_duration, human_rate, plural};

/// What a person reads for an upload: `client  name` on the server, the name sent on the sender.
pub(super) fn label(upload: &Tracked) -> String {
    match (&upload.peer, &upload.name) {
        (Some(peer), Some(name)) => format!("{peer}  {name}"),
        (Some(peer), None) => peer.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => String::from("?"),
    }
}

/// The label in at most `width` columns, shortened in a fixed order: the
/// client's port goes, then its address shrinks to its last part (`…23`),
/// then the name is cut in the middle; the client is kept as long as the
/// name keeps a dozen columns.
pub(super) fn label_in(upload: &Tracked, width: usize) -> String {
    let whole = label(upload);
    let (Some(peer), Some(name)) = (&upload.peer, &upload.name) else {
        return crate::term::middle_cut(&whole, width);
    };
    if console::measure_text_width(&whole) <= width {
        return whole;
    }
    let ip = peer.ip().to_string();
    let last = match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.octets()[3].to_string(),
        std::net::IpAddr::V6(v6) => format!("{:x}", v6.segments()[7]),
    };
    let short = format!("…{last}");
    let name_width = console::measure_text_width(name);
    for (who, least) in [
        (&ip, name_width),
        (&short, name_width),
        (&ip, 12),
        (&short, 8),
    ] {
        let room = width.saturating_sub(console::measure_text_width(who) + 2);
        if room >= least.min(name_width) && room > 0 {
            return format!("{who}  {}", crate::term::middle_cut(name, room));
        }
    }
    crate::term::middle_cut(name, width)
}

/// The first of `candidates` that fits in `width` columns, else the last cut to fit.
fn first_fitting(candidates: Vec<String>, width: usize) -> String {
    let last = candidates.last().cloned().unwrap_or_default();
    candidates
        .into_iter()
        .find(|c| console::measure_text_width(c) <= width)
        .unwrap_or_else(|| console::truncate_str(&last, width, "…").into_owned())
}

/// A finished upload's line in at most `width` columns: the rate goes
/// first, then the time, then the label shortens (see [`label_in`]); what
/// it was saved as stays.
pub(super) fn finished_line_in(upload: &Tracked, done: &Done, timed: bool, width: usize) -> String {
    let full = finished_line(&label(upload), done, timed);
    if console::measure_text_width(&full) <= width {
        return full;
    }
    let notes = resumed_note(done) + &kept_note(&done.kept);
    let size = Bytes(done.bytes).to_string();
    let timed = timed && !all_there(done);
    let time = human_duration(done.elapsed);
    let with = |label: &str, time_too: bool| match time_too {
        true => format!("{label}  {size}  in {time}{notes}"),
        false => format!("{label}  {size}{notes}"),
    };
    let whole = label(upload);
    let mut candidates = Vec::new();
    if timed {
        candidates.push(with(&whole, true));
    }
    candidates.push(with(&whole, false));
    let fixed = console::measure_text_width(&with("", false));
    candidates.push(with(&label_in(upload, width.saturating_sub(fixed)), false));
    first_fitting(candidates, width)
}

/// The word for a finished upload.
pub(super) fn verb(kept: &Kept) -> &'static str {
    match kept {
        Kept::Saved { .. } => "saved",
        Kept::Delivered { .. } => "delivered",
    }
}

/// `PEER  286 files  1.12 MiB  in 0.05s (22.40 MiB/s)  into photos (1)/[  2 failed]`;
/// for several batches that filled the same folders side by side, the
/// client's address without a port and how many there were.
pub(super) fn batch_line(batch: &BatchEnded, connections: u64) -> String {
    let who = match connections {
        1 => batch.peer.to_string(),
        _ => batch.peer.ip().to_string(),
    };
    let mut line = format!(
        "{who}  {}  {}  in {} ({})",
        plural(batch.saved, "file", "files"),
        Bytes(batch.bytes),
        human_duration(batch.elapsed),
        human_rate(batch.bytes, batch.elapsed)
    );
    const SHOWN: usize = 3;
    if !batch.into.is_empty() {
        let shown: Vec<String> = batch
            .into
            .iter()
            .take(SHOWN)
            .map(|t| format!("{t}/"))
            .collect();
        let _ = write!(line, "  into {}", shown.join(", "));
        if batch.into.len() > SHOWN {
            let _ = write!(line, " and {} more", batch.into.len() - SHOWN);
        }
    }
    if batch.failed > 0 {
        let _ = write!(line, "  {} failed", batch.failed);
    }
    if connections > 1 {
        let _ = write!(line, "  ({connections} connections at once)");
    }
    line
}

/// `LABEL  SIZE  in TIME (RATE)[  saved as NAME][  the server said: ...]`;
/// without time and rate when not `timed`: a small file of a batch, whose
/// time is mostly its wait behind the files before it, and whose "rate"
/// would be that wait's.
pub(super) fn finished_line(label: &str, done: &Done, timed: bool) -> String {
    if all_there(done) || !timed {
        // Nothing moved (or nothing worth timing): no time or rate to tell.
        return format!("{label}  {}", Bytes(done.bytes))
            + &resumed_note(done)
            + &kept_note(&done.kept);
    }
    // The rate of what moved this time: a resumed file's first bytes were there already.
    let moved = done.bytes.saturating_sub(done.resumed_from);
    let mut line = format!(
        "{label}  {}  in {} ({})",
        Bytes(done.bytes),
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
        format!("  resumed at {}", Bytes(done.resumed_from))
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
            Bytes(t.bytes)
        )],
        Side::Send => {
            let mut counts = Vec::new();
            if t.saved > 0 || t.delivered == 0 {
                counts.push(format!("{} saved", t.saved));
            }
            if t.delivered > 0 {
                counts.push(format!("{} delivered", t.delivered));
            }
            let not_sent = summary
                .files
                .iter()
                .filter(|f| f.result.as_ref().is_err_and(|why| is_not_sent(why)))
                .count() as u64;
            counts.push(format!("{} failed", t.failed - not_sent));
            if not_sent > 0 {
                counts.push(format!("{not_sent} not sent"));
            }
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
                format!(" ({} of it on the server already)", Bytes(held))
            } else {
                String::new()
            };
            let interrupted = match summary.interrupted {
                true => "ftx: interrupted (Ctrl-C): ",
                false => "",
            };
            let mut lines = vec![format!(
                "{interrupted}{}: {}{there} in {elapsed} ({}){to}",
                counts.join(", "),
                Bytes(t.bytes),
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

/// How the reason of a file that was never sent starts (the server could
/// not be reached, the run was interrupted first).
const NOT_SENT: &str = "not sent";

/// Whether a failure's reason says the file was never sent.
fn is_not_sent(reason: &str) -> bool {
    reason.starts_with(NOT_SENT)
}

/// In an interrupted run, the files it cut short (in flight or not sent),
/// with why: no event told of them.
pub(super) fn cut_short(summary: &Summary) -> Vec<(&str, &str)> {
    if !summary.interrupted {
        return Vec::new();
    }
    summary
        .files
        .iter()
        .filter_map(|f| Some((f.name.as_str(), f.result.as_ref().err()?.as_str())))
        .filter(|(_, why)| {
            why.starts_with(super::IN_FLIGHT) || *why == crate::client::NOT_SENT_INTERRUPTED
        })
        .collect()
}

/// The sender's final table, columns that line up: a row per file given, in
/// the order given, and one per folder given, with its files counted; a file
/// of a folder that failed or landed somewhere other than beside the rest
/// gets a row of its own below its folder's.
pub(super) fn table(summary: &Summary, width: usize) -> Vec<String> {
    let rows = rows(&summary.files);
    let name_width = rows
        .iter()
        .map(|row| console::measure_text_width(row.name()))
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
    let result = |word: &str, ok: bool| {
        let word = match ok {
            true => style(word).green(),
            false => style(word).red(),
        };
        console::pad_str(&word.to_string(), 9, console::Alignment::Left, None).into_owned()
    };
    let mut lines = vec![style(format!(
        "{:<name_width$}  {:<9}  {}",
        "file",
        "result",
        columns("size", "time", "rate")
    ))
    .bold()
    .to_string()];
    for row in &rows {
        let name = crate::term::middle_cut(row.name(), name_width);
        let name = console::pad_str(&name, name_width, console::Alignment::Left, None);
        let text = match row {
            Row::File(file) => {
                let mut text = match &file.result {
                    Ok(done) => format!(
                        "{name}  {}  {}{}",
                        result(verb(&done.kept), true),
                        match all_there(done) || !file.timed {
                            true => columns(&Bytes(done.bytes).to_string(), "", ""),
                            false => columns(
                                &Bytes(done.bytes).to_string(),
                                &human_duration(done.elapsed),
                                &human_rate(
                                    done.bytes.saturating_sub(done.resumed_from),
                                    done.elapsed
                                )
                            ),
                        },
                        resumed_note(done) + &kept_note(&done.kept)
                    ),
                    Err(reason) => match reason.strip_prefix(NOT_SENT) {
                        Some(why) => format!(
                            "{name}  {}  {}",
                            result("not sent", false),
                            why.trim_start_matches(':').trim_start()
                        ),
                        None => format!("{name}  {}  {reason}", result("failed", false)),
                    },
                };
                if let Some(original) = &file.renamed_from {
                    let _ = write!(
                        text,
                        "  (renamed: another file here is also called {original})"
                    );
                }
                text
            }
            // No time or rate of its own: what it came to follows its size.
            Row::Folder(folder) => format!(
                "{name}  {}  {:>10}  {}",
                match folder.verb {
                    Some(word) => result(word, true),
                    None => result("failed", false),
                },
                Bytes(folder.bytes).to_string(),
                folder.note()
            ),
        };
        // A long reason goes on below, indented, rather than cut or wrapped by the terminal.
        lines.extend(crate::term::wrap(&text, width));
    }
    lines
}

/// A row of the sender's table.
enum Row<'a> {
    File(&'a FileReport),
    Folder(Folder),
}

impl Row<'_> {
    fn name(&self) -> &str {
        match self {
            Row::File(file) => &file.name,
            Row::Folder(folder) => &folder.name,
        }
    }
}

/// A folder given, as its row tells it.
struct Folder {
    /// `photos/`
    name: String,
    /// How its files that went well went (`None`: none did).
    verb: Option<&'static str>,
    files: usize,
    ok: usize,
    bytes: u64,
    /// Files the server held whole already, and files resumed.
    already: usize,
    resumed: usize,
    /// The top folder its files went into on the server, when that is another name.
    saved_as: Option<String>,
}

impl Folder {
    /// `2000 files, 3 already there  saved as photos (1)/  (1 failed, below)`
    fn note(&self) -> String {
        let files = plural(self.files as u64, "file", "files");
        let mut note = if self.ok == self.files {
            files
        } else if self.ok == 0 {
            format!(
                "{files}, {} failed (below)",
                if self.files == 1 { "it" } else { "all" }
            )
        } else {
            format!("{} of {} files", self.ok, self.files)
        };
        if self.verb == Some("delivered") {
            note.push_str("  under their own names: a classroom server makes no folders");
        }
        if self.already > 0 {
            let _ = write!(note, ", {} already there", self.already);
        }
        if self.resumed > 0 {
            let _ = write!(note, ", {} resumed", self.resumed);
        }
        if let Some(top) = &self.saved_as {
            let _ = write!(note, "  saved as {top}/");
        }
        let below = self.files - self.ok;
        if below > 0 && self.ok > 0 {
            let _ = write!(note, "  ({below} failed, below)");
        }
        note
    }
}

/// The rows of the table: files given as they are, each folder given as
/// one row, followed by those of its files that need a word of their own.
fn rows(files: &[FileReport]) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let mut at = 0;
    while at < files.len() {
        let Some(name) = &files[at].folder else {
            rows.push(Row::File(&files[at]));
            at += 1;
            continue;
        };
        let count = files[at..]
            .iter()
            .take_while(|f| f.folder.as_ref() == Some(name))
            .count();
        let group = &files[at..at + count];
        at += count;
        // Where most of its files went: the top folder on the server.
        let mut tops: HashMap<&str, usize> = HashMap::new();
        for file in group {
            if let Some(top) = saved_top(file) {
                *tops.entry(top).or_default() += 1;
            }
        }
        let top = tops
            .into_iter()
            .max_by_key(|&(top, n)| (n, std::cmp::Reverse(top)))
            .map(|(top, _)| top);
        let done: Vec<&Done> = group
            .iter()
            .filter_map(|f| f.result.as_ref().ok())
            .collect();
        rows.push(Row::Folder(Folder {
            name: format!("{name}/"),
            verb: done.first().map(|d| verb(&d.kept)),
            files: group.len(),
            ok: done.len(),
            bytes: done.iter().map(|d| d.bytes).sum(),
            already: done.iter().filter(|d| all_there(d)).count(),
            resumed: done
                .iter()
                .filter(|d| d.resumed_from > 0 && !all_there(d))
                .count(),
            saved_as: top.filter(|top| top != name).map(str::to_string),
        }));
        rows.extend(
            group
                .iter()
                .filter(|f| f.result.is_err() || f.renamed_from.is_some() || !beside(f, top))
                .map(Row::File),
        );
    }
    rows
}

/// Where a file went on the server, as far as the sender knows: its name, or the name it was saved as.
fn saved_path(file: &FileReport) -> Option<&str> {
    match &file.result {
        Ok(Done {
            kept: Kept::Saved {
                saved_as: Some(saved_as),
            },
            ..
        }) => Some(saved_as),
        Ok(_) => Some(&file.name),
        Err(_) => None,
    }
}

/// The top folder a file of a folder went into, if it went into one.
fn saved_top(file: &FileReport) -> Option<&str> {
    saved_path(file)?.split_once('/').map(|(top, _)| top)
}

/// Whether a file of a folder landed in the folder's top folder `top` on
/// the server under its own name (a file the server numbered, or the first
/// file left where the classic upload put it, did not).
fn beside(file: &FileReport, top: Option<&str>) -> bool {
    let (Some(saved), Some(top)) = (saved_path(file), top) else {
        return true;
    };
    let base = |path: &str| path.rsplit('/').next().map(str::to_string);
    saved_top(file) == Some(top) && base(saved) == base(&file.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(name: &str, folder: Option<&str>, saved_as: Option<&str>) -> FileReport {
        FileReport {
            name: name.into(),
            renamed_from: None,
            result: Ok(Done {
                kept: Kept::Saved {
                    saved_as: saved_as.map(str::to_string),
                },
                bytes: 10,
                elapsed: Duration::from_millis(5),
                verified: None,
                resumed_from: 0,
            }),
            folder: folder.map(str::to_string),
            timed: true,
        }
    }

    #[test]
    fn a_folder_is_one_row_and_its_odd_files_follow_it() {
        let mut failed = report("photos/bad.jpg", Some("photos"), None);
        failed.result = Err("cannot open".into());
        let files = [
            report("first.txt", None, None),
            // The classic first file, moved into the folder after the fact.
            report("a.jpg", Some("photos"), Some("photos (1)/2024/a.jpg")),
            report("photos/b.jpg", Some("photos"), Some("photos (1)/b.jpg")),
            report("photos/c.jpg", Some("photos"), Some("photos (1)/c.jpg")),
            // Saved beside an older file of that name.
            report("photos/d.jpg", Some("photos"), Some("photos (1)/d (1).jpg")),
            // A first file the folder could not take: left at the top.
            report("e.jpg", Some("photos"), None),
            failed,
            report("last.txt", None, None),
        ];
        let rows = rows(&files);
        let names: Vec<&str> = rows.iter().map(Row::name).collect();
        assert_eq!(
            names,
            [
                "first.txt",
                "photos/",
                "photos/d.jpg",
                "e.jpg",
                "photos/bad.jpg",
                "last.txt"
            ]
        );
        let Row::Folder(folder) = &rows[1] else {
            panic!("not a folder row")
        };
        assert_eq!(
            folder.note(),
            "5 of 6 files  saved as photos (1)/  (1 failed, below)"
        );
        assert_eq!(folder.bytes, 50);

        // To a classroom server; and a folder none of whose files went.
        let mut delivered = report("a.jpg", Some("photos"), None);
        delivered.result = Ok(Done {
            kept: Kept::Delivered { said: None },
            ..delivered.result.unwrap()
        });
        let mut none = report("docs/x.txt", Some("docs"), None);
        none.result = Err("cannot open".into());
        let files = [delivered.clone(), delivered, none];
        let notes: Vec<String> = super::rows(&files)
            .iter()
            .filter_map(|row| match row {
                Row::Folder(folder) => Some(folder.note()),
                Row::File(_) => None,
            })
            .collect();
        assert_eq!(
            notes,
            [
                "2 files  under their own names: a classroom server makes no folders",
                "1 file, it failed (below)"
            ]
        );
    }
}
