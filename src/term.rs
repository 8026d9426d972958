//! Terminal helpers every output mode shares: one-write stderr lines, colour choice, durations and rates as people read them.

use std::io::Write;
use std::time::Duration;

/// Writes one line to stderr in a single write and ignores errors: a closed or
/// full stderr (`2>&-`, `| head -1`) must never stop a server or a transfer,
/// which `eprintln!` would do by panicking.
pub fn say_line(mut line: String) {
    line.push('\n');
    say_all(&line);
}

/// Writes lines, each with its newline, to stderr in one go; never panics.
pub fn say_all(lines: &str) {
    let _ = std::io::stderr().lock().write_all(lines.as_bytes());
}

/// Writes `line` to stderr broken into rows for a terminal `width` columns
/// wide (see [`wrap`]), a [`say_line`] each.
pub fn say_wrapped(line: &str, width: usize) {
    for row in wrap(line, width) {
        say_line(row);
    }
}

/// `eprintln!` that never panics: formats, then [`say_line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::term::say_line(format!($($arg)*))
    };
}

/// Writes a last line to stderr without waiting, and without std's stderr
/// lock, which a thread stuck writing to a full pipe may hold: a process asked
/// to quit at once must not wait for its log.
pub fn say_without_waiting(line: &str) {
    crate::sys::term::say_without_waiting(line);
}

/// Stops the terminal from echoing what is typed while bars are drawn (an
/// Enter moves the cursor, `^C` lands at the end of the last bar's row):
/// either leaves torn copies of bars on the screen. Undone by
/// [`restore_terminal`].
pub fn quiet_echo() {
    crate::sys::term::quiet_echo();
}

/// Puts back what [`quiet_echo`] changed, if anything. What was typed
/// meanwhile, unseen, is thrown away rather than left for the shell to run.
pub fn restore_terminal() {
    crate::sys::term::restore();
}

/// When to colour the output, as `--color` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Colours on a terminal, unless `NO_COLOR` is set (see no-color.org).
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Applies the choice to everything `console` styles.
    pub fn apply(self) {
        let on = match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                    false
                } else {
                    return; // console decides per stream whether it is a terminal
                }
            }
        };
        console::set_colors_enabled(on);
        console::set_colors_enabled_stderr(on);
    }
}

/// A duration as people read it in a log: `0.42s`, `12.3s`, `2m05s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A size as people read it: `976.56 KiB`, `0.98 MiB`. Binary units, as
/// indicatif's `HumanBytes`, but the next unit from 1000 of the smaller
/// one, so that a number never has four digits before its point (it read
/// `1002.72 KiB/s`, wider than its column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

/// The units of [`Bytes`] past bytes, each 1024 of the one before.
const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 < 1000 {
            return write!(f, "{} B", self.0);
        }
        // In whole numbers, rounded as `{:.2}` of the float would (a tie to
        // the even hundredth), without the float formatting's cost on every
        // line of a big folder. The next unit is taken where the figure would
        // round to 1000.00.
        let bytes = u128::from(self.0);
        let mut unit_bytes: u128 = 1024;
        let mut unit = 0;
        while 200 * bytes >= 199_999 * unit_bytes && unit + 1 < UNITS.len() {
            unit_bytes *= 1024;
            unit += 1;
        }
        let (whole, left) = (bytes * 100 / unit_bytes, bytes * 100 % unit_bytes);
        let hundredths = match (2 * left).cmp(&unit_bytes) {
            std::cmp::Ordering::Less => whole,
            std::cmp::Ordering::Greater => whole + 1,
            std::cmp::Ordering::Equal => whole + (whole & 1),
        };
        write!(
            f,
            "{}.{:02} {}",
            hundredths / 100,
            hundredths % 100,
            UNITS[unit]
        )
    }
}

/// How far a transfer got: `505.00 MiB of 1.00 GiB`.
pub fn part_of(got: u64, size: u64) -> String {
    format!("{} of {}", Bytes(got), Bytes(size))
}

/// A rate as people read it: `3.87 MiB/s`.
pub fn human_rate(bytes: u64, elapsed: Duration) -> String {
    format!("{}/s", Bytes(bytes_per_second(bytes, elapsed)))
}

/// Bytes per second, never dividing by zero.
pub fn bytes_per_second(bytes: u64, elapsed: Duration) -> u64 {
    // Precision lost above 2^53 bytes per second is of no consequence on a screen.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rate = (bytes as f64 / elapsed.as_secs_f64().max(1e-6)) as u64;
    rate
}

/// `n thing` or `n things`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` in at most `width` columns: whole if it fits, else cut in the
/// middle with `…`, keeping its start, its end and a short extension, so
/// that names that differ near the end stay apart (`upload_f…er_12.dat`).
pub fn middle_cut(text: &str, width: usize) -> String {
    if console::measure_text_width(text) <= width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let wide = |cs: &[char]| console::measure_text_width(&cs.iter().collect::<String>());
    let budget = width.saturating_sub(1);
    // The end gets the extension and half of what is left, the start the rest.
    let ext = match text.rfind('.') {
        Some(dot) if dot > 0 && text.len() - dot <= 8 => text[dot..].chars().count(),
        _ => 0,
    };
    let mut tail_len = (ext + budget.saturating_sub(ext) / 2).min(budget);
    while tail_len > 0 && wide(&chars[chars.len() - tail_len..]) > budget {
        tail_len -= 1;
    }
    let tail = &chars[chars.len() - tail_len..];
    let room = budget.saturating_sub(wide(tail));
    let mut head_len = 0;
    while head_len < chars.len() - tail_len && wide(&chars[..=head_len]) <= room {
        head_len += 1;
    }
    let mut cut: String = chars[..head_len].iter().collect();
    cut.push('…');
    cut.extend(tail);
    cut
}

/// Breaks `line` into rows narrower than `width` columns, between words
/// where it can (continuation rows indented by two spaces), so that no line
/// printed above the bars wraps on the terminal.
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let width = width.saturating_sub(1).max(8);
    if console::measure_text_width(line) <= width {
        return vec![line.to_string()];
    }
    let body = line.trim_start_matches(' ');
    let indent = " ".repeat((line.len() - body.len()).min(width / 2));
    let more = format!("{indent}  ");
    let mut rows = Vec::new();
    // The row so far, and whether it holds a word yet.
    let mut row = indent.clone();
    let mut started = false;
    for word in body.split(' ') {
        let candidate = match started {
            true => format!("{row} {word}"),
            false => format!("{row}{word}"),
        };
        if console::measure_text_width(&candidate) <= width {
            row = candidate;
            started = true;
            continue;
        }
        if started {
            rows.push(std::mem::take(&mut row));
        }
        row = format!("{more}{word}");
        started = true;
        // A word wider than a row is cut where the row ends.
        while console::measure_text_width(&row) > width {
            let mut head = String::new();
            let mut chars = row.chars();
            for c in chars.by_ref() {
                head.push(c);
                if console::measure_text_width(&head) >= width {
                    break;
                }
            }
            rows.push(head);
            row = format!("{more}{}", chars.as_str());
        }
    }
    if started && !row.trim().is_empty() {
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn sizes_take_the_next_unit_from_1000() {
        assert_eq!(Bytes(999).to_string(), "999 B");
        assert_eq!(Bytes(1000).to_string(), "0.98 KiB");
        assert_eq!(Bytes(1_000_000).to_string(), "976.56 KiB");
        assert_eq!(Bytes(1_026_790).to_string(), "0.98 MiB");
        assert_eq!(Bytes(1 << 20).to_string(), "1.00 MiB");
        assert_eq!(Bytes(u64::MAX).to_string(), "16.00 EiB");
        // Ties go to the even hundredth, as the float's `{:.2}` does.
        assert_eq!(Bytes(1152).to_string(), "1.12 KiB");
        assert_eq!(Bytes(1408).to_string(), "1.38 KiB");
        // Never four digits before the point, even where the figure rounds up.
        assert_eq!(Bytes(1_023_994).to_string(), "999.99 KiB");
        assert_eq!(Bytes(1_023_995).to_string(), "0.98 MiB");
    }

    proptest::proptest! {
        #[test]
        fn sizes_read_as_the_float_would_print_them(bytes in 1000u64..(1 << 53)) {
            let shown = Bytes(bytes).to_string();
            let (figure, unit) = shown.split_once(' ').unwrap();
            let power = UNITS.iter().position(|u| *u == unit).unwrap();
            #[allow(clippy::cast_precision_loss)]
            let value = bytes as f64 / 1024f64.powi(i32::try_from(power).unwrap() + 1);
            proptest::prop_assert_eq!(figure, format!("{value:.2}"));
            proptest::prop_assert!(figure.len() <= 6, "{shown}");
        }
    }

    #[test]
    fn rates_and_plurals() {
        assert_eq!(human_rate(3 << 20, Duration::from_secs(1)), "3.00 MiB/s");
        assert_eq!(human_rate(5, Duration::ZERO), "4.77 MiB/s");
        assert_eq!(plural(1u64, "worker", "workers"), "1 worker");
        assert_eq!(plural(3u64, "worker", "workers"), "3 workers");
    }

    #[test]
    fn names_are_cut_in_the_middle_keeping_what_tells_them_apart() {
        assert_eq!(middle_cut("notes.txt", 20), "notes.txt");
        let twelve = middle_cut("upload_file_number_12.dat", 19);
        let thirteen = middle_cut("upload_file_number_13.dat", 19);
        assert_eq!(twelve, "upload_…mber_12.dat");
        assert_ne!(twelve, thirteen);
        for width in [1, 2, 5, 9, 14] {
            let cut = middle_cut("upload_file_number_12.dat", width);
            assert!(
                console::measure_text_width(&cut) <= width,
                "{cut:?} in {width}"
            );
        }
        assert!(middle_cut("no-extension-at-all-here", 10).starts_with("no-ex"));
        let wide = console::measure_text_width(&middle_cut("日本語のファイル名.txt", 12));
        assert!((11..=12).contains(&wide), "{wide}");
    }

    #[test]
    fn long_lines_break_between_words_and_never_reach_the_last_column() {
        assert_eq!(wrap("short line", 40), ["short line"]);
        let rows = wrap(
            "trace 127.0.0.1:5000 frame {\"file\":\"a.txt\",\"size\":12} answered saved",
            30,
        );
        assert!(rows.len() > 1, "{rows:?}");
        for row in &rows {
            assert!(console::measure_text_width(row) < 30, "{row:?} in {rows:?}");
        }
        assert!(rows[1..].iter().all(|r| r.starts_with("  ")), "{rows:?}");
        let joined: Vec<&str> = rows.iter().flat_map(|r| r.split_whitespace()).collect();
        assert_eq!(
            joined.concat(),
            "trace127.0.0.1:5000frame{\"file\":\"a.txt\",\"size\":12}answeredsaved"
        );
        // One word wider than the row is cut, nothing lost.
        let rows = wrap(&"x".repeat(50), 20);
        assert!(
            rows.iter().all(|r| console::measure_text_width(r) < 20),
            "{rows:?}"
        );
        assert_eq!(rows.concat().replace(' ', ""), "x".repeat(50));
        // An indented line keeps its indent, and its rows go further in.
        let rows = wrap(
            "  3 of them wait for a free worker: the bounded pool at work",
            30,
        );
        assert!(rows[0].starts_with("  3 of"), "{rows:?}");
        assert!(rows[1..].iter().all(|r| r.starts_with("    ")), "{rows:?}");
    }
}
