//! The drop folder's folders (the OS layer's `Dir`), and the ways into them that never follow a link nor wait: folders below, regular files, a free numbered name found in a try or two.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::names;
pub(super) use crate::sys::fs::Dir;
use crate::sys::fs::DirKey;
use crate::sys::Kind;

/// How many numbered names (`notes (1).txt`, ...) are tried before giving up.
pub const MAX_NUMBERED: u32 = 9999;

/// What opening something in the drop folder that is not a regular file says.
pub(super) use crate::sys::NOT_A_FILE;

/// Opens `name` in `dir` as a folder, refusing a link.
pub(super) fn open_below(dir: &Dir, name: &str) -> io::Result<Arc<Dir>> {
    dir.open_below(name).map(Arc::new)
}

/// Opens the regular file `name` in `dir` to read it, with its size: no link
/// followed, and without waiting, so that a named pipe put there is refused,
/// not waited on.
pub(super) fn open_regular(dir: &Dir, name: &str) -> io::Result<(File, u64)> {
    regular(dir.open_to_read(name)?)
}

/// `file` with its size, if it is a regular file; [`NOT_A_FILE`] otherwise.
pub(super) fn regular(file: File) -> io::Result<(File, u64)> {
    let stat = crate::sys::fs::stat_of(&file)?;
    if stat.kind != Kind::File {
        return Err(io::Error::other(NOT_A_FILE));
    }
    Ok((file, stat.size))
}

/// Whether `e` says a name is taken.
pub(super) fn taken(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// Why no name of the numbered series could be had.
#[derive(Debug)]
pub(super) enum Unplaced {
    /// The name and its [`MAX_NUMBERED`] numbered names are all taken.
    AllTaken,
    /// Placing under a free name failed otherwise.
    Failed(io::Error),
}

/// Where the search for a free numbered name goes on, per folder and name:
/// from the number after the last one given (past the first
/// [`SEARCHED_FROM_ONE`]), so that the thousandth `same.txt` costs a try or
/// two, not a thousand. A series found all taken is
/// not searched again for [`ALL_TAKEN_FOR`]. Only a hint: kept for at most
/// [`NUMBERING_KEPT`] names, forgotten all at once past that.
#[derive(Debug, Default)]
pub(super) struct Numbering {
    next: Mutex<HashMap<(DirKey, String), Next>>,
}

/// Names whose numbering is remembered.
const NUMBERING_KEPT: usize = 4096;

/// Series this short are searched from `(1)`, so that the first free name is
/// the one given, as people expect; longer ones go on where the last search stopped.
const SEARCHED_FROM_ONE: u32 = 16;

/// How long a series found all taken is answered so at once.
const ALL_TAKEN_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Next {
    From(u32),
    AllTaken(Instant),
}

impl Numbering {
    /// Gives something `name` in `dir`, or a numbered name (`name (1)`,
    /// `name (2)`...) that is free, with `place`, which fails with
    /// `AlreadyExists` for a name taken (a dangling link included). Returns the name it got.
    pub(super) fn first_free(
        &self,
        dir: &Dir,
        name: &str,
        place: impl FnMut(&str) -> io::Result<()>,
    ) -> Result<String, Unplaced> {
        self.search(dir, name, place, true)
    }

    /// Whether `name`, or a numbered name, is free in `dir` now: what an
    /// upload checks before its content is taken, so that it is refused
    /// then rather than after every byte arrived.
    pub(super) fn any_free(&self, dir: &Dir, name: &str) -> Result<(), Unplaced> {
        let free = |candidate: &str| match dir.stat_at(candidate) {
            Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        self.search(dir, name, free, false).map(drop)
    }

    fn search(
        &self,
        dir: &Dir,
        name: &str,
        mut place: impl FnMut(&str) -> io::Result<()>,
        taking: bool,
    ) -> Result<String, Unplaced> {
        match place(name) {
            Ok(()) => return Ok(name.to_string()),
            Err(e) if taken(&e) => {}
            Err(e) => return Err(Unplaced::Failed(e)),
        }
        let key = (dir.key(), name.to_string());
        let start = match self.next.lock().expect("numbering lock").get(&key) {
            Some(Next::AllTaken(at)) if at.elapsed() < ALL_TAKEN_FOR => {
                return Err(Unplaced::AllTaken)
            }
            Some(Next::From(n)) if *n > SEARCHED_FROM_ONE => *n,
            _ => 1,
        };
        for n in (start..=MAX_NUMBERED).chain(1..start) {
            let candidate = names::numbered(name, n);
            match place(&candidate) {
                Ok(()) => {
                    // The next search starts after a name taken, at one only looked at.
                    let next = if taking { n % MAX_NUMBERED + 1 } else { n };
                    self.note(key, Next::From(next));
                    return Ok(candidate);
                }
                Err(e) if taken(&e) => {}
                Err(e) => return Err(Unplaced::Failed(e)),
            }
        }
        self.note(key, Next::AllTaken(Instant::now()));
        Err(Unplaced::AllTaken)
    }

    fn note(&self, key: (DirKey, String), next: Next) {
        let mut kept = self.next.lock().expect("numbering lock");
        if kept.len() >= NUMBERING_KEPT && !kept.contains_key(&key) {
            kept.clear();
        }
        kept.insert(key, next);
    }
}

/// What [`Unplaced::AllTaken`] says of `name`.
pub(super) fn all_taken(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name} and {MAX_NUMBERED} numbered names are all taken"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The taken names of a folder, standing in for its entries: `place` on
    /// them fails as `linkat` would, and every try is counted.
    struct Taken {
        names: std::collections::HashSet<String>,
        tries: usize,
    }

    impl Taken {
        fn place(&mut self, candidate: &str) -> io::Result<()> {
            self.tries += 1;
            match self.names.insert(candidate.to_string()) {
                true => Ok(()),
                false => Err(io::ErrorKind::AlreadyExists.into()),
            }
        }
    }

    /// The thousandth file of the same name costs a try or two, not a
    /// thousand (9,999 of them took 57 s of CPU when each search began at 1).
    #[test]
    fn numbered_names_are_found_in_a_try_or_two() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Dir::open(dir.path()).unwrap();
        let numbering = Numbering::default();
        let mut taken = Taken {
            names: Default::default(),
            tries: 0,
        };
        let mut got = Vec::new();
        for _ in 0..2000 {
            got.push(
                numbering
                    .first_free(&dir, "same.txt", |c| taken.place(c))
                    .unwrap(),
            );
        }
        assert_eq!(got[0], "same.txt");
        assert_eq!(got[1], "same (1).txt");
        assert_eq!(got[1999], "same (1999).txt");
        // The name, then one numbered name, each time; a short series is searched from (1).
        let short = (SEARCHED_FROM_ONE * SEARCHED_FROM_ONE) as usize;
        assert!(taken.tries <= 2 * 2000 + short, "{} tries", taken.tries);

        // A hole made by hand is found once the series comes round to it.
        taken.names.remove("same (5).txt");
        let mut last = String::new();
        for _ in 0..=(MAX_NUMBERED as usize - 1999) {
            last = numbering
                .first_free(&dir, "same.txt", |c| taken.place(c))
                .unwrap();
        }
        assert_eq!(last, "same (5).txt");
        // All taken now: the next search says so, and the one after at once.
        let full = numbering.first_free(&dir, "same.txt", |c| taken.place(c));
        assert!(matches!(full, Err(Unplaced::AllTaken)));
        let tries = taken.tries;
        let again = numbering.first_free(&dir, "same.txt", |c| taken.place(c));
        assert!(matches!(again, Err(Unplaced::AllTaken)));
        assert_eq!(taken.tries, tries + 1, "only the name itself is tried");
    }
}
