//! Turning an untrusted name into a safe file name in the drop folder (and a batch's path into safe components), and into text safe to show.

use std::fmt::Write as _;

/// The longest file name most file systems allow, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Room kept free for a ` (NNNN)` suffix when the name is already taken.
const SUFFIX_ROOM: usize = 8;

/// Longest extension kept whole when a long name is shortened.
const MAX_EXTENSION_BYTES: usize = 16;

/// Used when nothing usable is left of the name.
const FALLBACK_NAME: &str = "unnamed";

/// Names Windows gives to devices; a file called `CON.txt` cannot be opened there.
const WINDOWS_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Extensions made of two parts, kept together when a number is added (`a (1).tar.gz`).
const DOUBLE_EXTENSIONS: &[&str] = &[".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"];

/// Reduces a name from the wire to one safe path component.
///
/// Only the last component survives (`/` and `\` both separate, so `../x`,
/// `C:\x` and `a/../../x` all become `x`); invalid UTF-8, control and
/// format characters and characters Windows forbids become `_`; leading dots
/// and spaces go (no hidden files, no `.` or `..`), as do trailing dots and
/// spaces; Windows device names get a `_` prefix; the result fits in 255
/// bytes with room for a ` (N)` suffix, keeping the extension. Never empty.
pub fn safe_file_name(raw: &[u8]) -> String {
    let last = raw
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or_default();
    let mut name = String::with_capacity(last.len());
    for chunk in last.utf8_chunks() {
        for c in chunk.valid().chars() {
            name.push(if is_unsafe_in_name(c) { '_' } else { c });
        }
        if !chunk.invalid().is_empty() {
            name.push('_');
        }
    }
    let name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut name = if name.is_empty() {
        FALLBACK_NAME.to_string()
    } else {
        name.to_string()
    };
    let stem = name.split('.').next().unwrap_or_default();
    if WINDOWS_DEVICES
        .iter()
        .any(|d| d.eq_ignore_ascii_case(stem.trim_end()))
    {
        name.insert(0, '_');
    }
    shorten(&name, MAX_NAME_BYTES - SUFFIX_ROOM)
}

fn is_unsafe_in_name(c: char) -> bool {
    c.is_control() || is_invisible_format(c) || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Characters that reorder or hide text, or break a line where nothing
/// shows it (the line and paragraph separators, U+2028 and U+2029: a screen,
/// or a tool that splits a log into lines, takes them for a new line):
/// harmless to a file system, misleading on a screen.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Splits `name` into stem and extension; the extension includes its dot.
fn split_extension(name: &str) -> (&str, &str) {
    let lower = name.to_ascii_lowercase();
    if let Some(ext) = DOUBLE_EXTENSIONS
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len())
    {
        return name.split_at(name.len() - ext.len());
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    }
}

/// Cuts a name to at most `max` bytes on a character boundary, keeping a short extension.
fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let ext = if ext.len() <= MAX_EXTENSION_BYTES {
        ext
    } else {
        ""
    };
    let mut end = max - ext.len();
    while !stem.is_char_boundary(end.min(stem.len())) {
        end -= 1;
    }
    // A cut stem must not end in a dot or space either (Windows drops them).
    let stem = stem[..end.min(stem.len())].trim_end_matches(['.', ' ']);
    format!("{stem}{ext}")
}

/// The `n`th candidate for a taken name: `notes.txt`, `notes (1).txt`, `notes (2).txt`, ...
/// A name that already ends in a number counts on from its stem: the candidates
/// after `notes (1).txt` are `notes (1).txt`, `notes (2).txt`, not `notes (1) (1).txt`.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let stem = strip_number(stem);
    format!("{stem} ({n}){ext}")
}

/// `notes (12)` -> `notes`; anything else as it is.
fn strip_number(stem: &str) -> &str {
    stem.strip_suffix(')')
        .and_then(|s| s.rsplit_once(" ("))
        .filter(|(base, digits)| {
            !base.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
        .map_or(stem, |(base, _)| base)
}

/// Makes untrusted bytes safe to print: valid text stays as it is, while
/// control and format characters and invalid UTF-8 are shown as escapes
/// (`\x1b`, `\u{202e}`, `\xff`), so nothing a client sends can move the
/// cursor, change colours or ring the bell.
pub fn escape_for_terminal(raw: &[u8]) -> String {
    // Printable ASCII but `\\` is shown as it is: most names are all of it,
    // and copying it whole spares them the walk through characters below.
    let plain = raw
        .iter()
        .position(|&b| !(b' '..=b'~').contains(&b) || b == b'\\')
        .unwrap_or(raw.len());
    let (plain, rest) = raw.split_at(plain);
    let mut out = String::with_capacity(raw.len());
    out.push_str(&String::from_utf8_lossy(plain));
    for chunk in rest.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() || is_invisible_format(c) {
                if (c as u32) < 0x80 {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                } else {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The most folders a path of a batch may go down (PROTOCOL.md B3).
pub const MAX_DEPTH: usize = 64;

/// The longest a path of a batch may be once made safe, in bytes: with the
/// drop folder's own path it stays under the system's 4096 (`PATH_MAX`).
pub const MAX_PATH: usize = 3072;

/// A path from a batch's frame (PROTOCOL.md B3), made safe: the top folder
/// (if any), the folders below it, the file's name.
pub struct SafePath {
    pub top: Option<String>,
    pub folders: Vec<String>,
    pub name: String,
}

impl SafePath {
    /// Each component is made safe the way names are; `..`, `.` and empty
    /// ones cannot leave the drop folder. Refused, with the reason: a path
    /// with nothing left, more than [`MAX_DEPTH`] folders deep, or longer than
    /// [`MAX_PATH`] bytes.
    pub fn of(path: &str) -> Result<SafePath, String> {
        let mut parts: Vec<String> = path
            .split(['/', '\\'])
            .filter(|c| !c.is_empty() && *c != "." && *c != "..")
            .map(|c| safe_file_name(c.as_bytes()))
            .collect();
        if parts.len() > MAX_DEPTH + 1 {
            return Err(format!("a path more than {MAX_DEPTH} folders deep"));
        }
        let length = parts.iter().map(|p| p.len() + 1).sum::<usize>();
        if length > MAX_PATH + 1 {
            return Err(format!("a path longer than {MAX_PATH} bytes"));
        }
        let name = parts.pop().ok_or("an empty path")?;
        let top = (!parts.is_empty()).then(|| parts.remove(0));
        Ok(SafePath {
            top,
            folders: parts,
            name,
        })
    }

    /// Its place below its top folder: the key files are remembered by in a folder (B5b).
    pub fn below_top(&self) -> String {
        self.below_top_as(&self.name)
    }

    /// The same place under `name`: the path's own name, or the numbered one it got.
    pub fn below_top_as(&self, name: &str) -> String {
        let mut parts: Vec<&str> = self.folders.iter().map(String::as_str).collect();
        parts.push(name);
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_ordinary_names() {
        assert_eq!(safe_file_name(b"notes.txt"), "notes.txt");
        assert_eq!(
            safe_file_name("résumé 2024.pdf".as_bytes()),
            "résumé 2024.pdf"
        );
        assert_eq!(safe_file_name("日本語.txt".as_bytes()), "日本語.txt");
    }

    #[test]
    fn keeps_only_the_last_component() {
        for raw in [
            "../x",
            "../../../../etc/x",
            "/etc/x",
            "a/../../x",
            "..\\x",
            "C:\\Windows\\x",
            "data/x",
        ] {
            assert_eq!(safe_file_name(raw.as_bytes()), "x", "{raw}");
        }
    }

    #[test]
    fn never_gives_dot_names_or_empty() {
        for raw in ["", ".", "..", "...", "a/..", "/", "\\", " ", ". .", "x/"] {
            assert_eq!(safe_file_name(raw.as_bytes()), FALLBACK_NAME, "{raw:?}");
        }
        assert_eq!(safe_file_name(b".bashrc"), "bashrc");
        assert_eq!(safe_file_name(b"notes.txt. "), "notes.txt");
    }

    #[test]
    fn replaces_control_bytes_and_invalid_utf8() {
        assert_eq!(safe_file_name(b"a\0b\x1b[2Jc\x07.txt"), "a_b_[2Jc_.txt");
        assert_eq!(safe_file_name(b"caf\xe9.txt"), "caf_.txt");
        assert_eq!(
            safe_file_name("evil\u{202e}txt.exe".as_bytes()),
            "evil_txt.exe"
        );
        assert_eq!(safe_file_name(b"C:x"), "C_x");
    }

    #[test]
    fn renames_windows_devices() {
        assert_eq!(safe_file_name(b"CON"), "_CON");
        assert_eq!(safe_file_name(b"nul.txt"), "_nul.txt");
        assert_eq!(safe_file_name(b"com1.tar.gz"), "_com1.tar.gz");
        assert_eq!(safe_file_name(b"console.txt"), "console.txt");
    }

    #[test]
    fn shortens_long_names_keeping_the_extension() {
        let long = format!("{}.pdf", "a".repeat(400));
        let safe = safe_file_name(long.as_bytes());
        assert_eq!(safe.len(), MAX_NAME_BYTES - SUFFIX_ROOM);
        assert!(safe.ends_with("aaa.pdf"));
        let wide = format!("{}.txt", "é".repeat(300));
        let safe = safe_file_name(wide.as_bytes());
        assert!(safe.len() <= MAX_NAME_BYTES - SUFFIX_ROOM && safe.ends_with("é.txt"));
    }

    #[test]
    fn numbers_taken_names_before_the_extension() {
        assert_eq!(numbered("notes.txt", 0), "notes.txt");
        assert_eq!(numbered("notes.txt", 1), "notes (1).txt");
        assert_eq!(numbered("archive.tar.gz", 2), "archive (2).tar.gz");
        assert_eq!(numbered("Makefile", 3), "Makefile (3)");
        assert_eq!(numbered("notes (1).txt", 0), "notes (1).txt");
        assert_eq!(numbered("notes (1).txt", 2), "notes (2).txt");
        assert_eq!(numbered(" (1)", 2), " (1) (2)");
        assert_eq!(numbered("a (x).txt", 1), "a (x) (1).txt");
    }

    #[test]
    fn escapes_what_would_drive_the_terminal() {
        assert_eq!(escape_for_terminal(b"notes.txt"), "notes.txt");
        assert_eq!(
            escape_for_terminal(b"\x1b[2J\x07x\r\n"),
            "\\x1b[2J\\x07x\\x0d\\x0a"
        );
        assert_eq!(escape_for_terminal(b"\x9b\xff"), "\\x9b\\xff");
        assert_eq!(
            escape_for_terminal("\u{9b}a\u{202e}".as_bytes()),
            "\\u{9b}a\\u{202e}"
        );
        assert_eq!(escape_for_terminal(b"a\\x1b"), "a\\\\x1b");
        assert_eq!(escape_for_terminal(b"ok \x1b[2J\xff"), "ok \\x1b[2J\\xff");
        // Line and paragraph separators: a new line to a screen and to tools that split lines.
        assert_eq!(
            escape_for_terminal("a\u{2028}b\u{2029}c".as_bytes()),
            "a\\u{2028}b\\u{2029}c"
        );
        assert_eq!(escape_for_terminal("ü".as_bytes()), "ü");
    }

    proptest! {
        #[test]
        fn any_bytes_give_one_safe_component(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let name = safe_file_name(&raw);
            prop_assert!(!name.is_empty());
            prop_assert!(name.len() + SUFFIX_ROOM <= MAX_NAME_BYTES);
            prop_assert!(!name.contains(['/', '\\', '\0']));
            prop_assert!(!name.starts_with('.') && !name.ends_with('.'));
            prop_assert!(!name.chars().any(|c| c.is_control()));
            prop_assert!(std::path::Path::new(&name).components().count() == 1);
            prop_assert!(numbered(&name, 9999).len() <= MAX_NAME_BYTES);
        }

        #[test]
        fn escaped_text_has_no_control_characters(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let shown = escape_for_terminal(&raw);
            prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible_format(c)));
        }
    }

    #[test]
    fn paths_stay_inside_and_are_made_safe() {
        let p = SafePath::of("photos/2024/a.jpg").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.folders, p.name.as_str()),
            (Some("photos"), vec!["2024".to_string()], "a.jpg")
        );
        let p = SafePath::of("../../etc/passwd").unwrap();
        assert_eq!((p.top.as_deref(), p.name.as_str()), (Some("etc"), "passwd"));
        let p = SafePath::of("/abs//x/./y").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.folders, p.name.as_str()),
            (Some("abs"), vec!["x".to_string()], "y")
        );
        let p = SafePath::of("a\\..\\b").unwrap();
        assert_eq!((p.top.as_deref(), p.name.as_str()), (Some("a"), "b"));
        let p = SafePath::of("notes.txt").unwrap();
        assert_eq!((p.top, p.name.as_str()), (None, "notes.txt"));
        assert_eq!(
            SafePath::of("../..").err().as_deref(),
            Some("an empty path")
        );
        let p = SafePath::of(".hidden/\u{1b}[2J").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.name.as_str()),
            (Some("hidden"), "_[2J")
        );
    }

    /// A path deeper or longer than a batch may make is refused, with the
    /// reason; one just inside both is taken.
    #[test]
    fn paths_too_deep_or_too_long_are_refused() {
        let deep = |folders: usize| format!("{}x.txt", "d/".repeat(folders));
        assert!(SafePath::of(&deep(MAX_DEPTH)).is_ok());
        assert_eq!(
            SafePath::of(&deep(MAX_DEPTH + 1)).err().as_deref(),
            Some("a path more than 64 folders deep")
        );
        let twelve = (0..12)
            .map(|_| "c".repeat(250))
            .collect::<Vec<_>>()
            .join("/");
        assert_eq!(twelve.len(), 3011);
        assert!(SafePath::of(&twelve).is_ok());
        let thirteen = format!("{twelve}/{}", "e".repeat(100));
        assert_eq!(
            SafePath::of(&thirteen).err().as_deref(),
            Some("a path longer than 3072 bytes")
        );
    }
}
