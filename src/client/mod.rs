//! The sender as a library: plan what each file is sent as, upload them `jobs` at a time, and return what came of each, in the order given.

mod upload;
mod verdict;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Mutex, OnceLock};
use std::thread;

use crossbeam_channel::Sender;

use crate::config::SendConfig;
use crate::names;
use crate::outcome::FileReport;
use crate::progress::{Event, Plan};
use crate::protocol::MAX_SEND_NAME;

/// What the run learned of the server from its receipts.
#[derive(Debug, Default)]
pub struct Learned {
    /// A receipt came back: the server is ftx, and a close without one is a failure.
    pub ftx: AtomicBool,
    /// The highest batch-mode version it speaks (0: none).
    pub batch: AtomicU32,
}

/// One file of the run, as it will be sent.
#[derive(Debug, Clone)]
pub struct Planned {
    pub path: PathBuf,
    /// The name on the wire: the file's base name, numbered if another file of the run has it.
    pub name: Vec<u8>,
    /// Set when `name` is not the file's own base name.
    pub renamed_from: Option<String>,
    /// Its size, if it could be read now.
    pub size: Option<u64>,
    /// Why it cannot be sent at all, found before connecting.
    pub problem: Option<String>,
}

impl Planned {
    /// The name sent, safe to print.
    pub fn shown(&self) -> String {
        names::escape_for_terminal(&self.name)
    }
}

/// Decides what every file is sent as. Two files whose base names are equal
/// would land on one name (a classroom server writes both into `NAME.temp` at
/// once): every one after the first gets a numbered name, `notes (1).txt`,
/// that no other file of the run has.
pub fn plan(files: &[PathBuf]) -> Vec<Planned> {
    let own: Vec<Option<Vec<u8>>> = files
        .iter()
        .map(|p| p.file_name().map(|n| n.as_bytes().to_vec()))
        .collect();
    // A numbered name must not take one that a later file has as its own.
    let all_own: HashSet<&Vec<u8>> = own.iter().flatten().collect();
    let mut taken: HashSet<Vec<u8>> = HashSet::new();
    let mut planned = Vec::with_capacity(files.len());
    for (path, own) in files.iter().zip(&own) {
        let size = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len());
        let mut entry = Planned {
            path: path.clone(),
            name: own.clone().unwrap_or_default(),
            renamed_from: None,
            size,
            problem: None,
        };
        match own {
            None => entry.problem = Some("has no file name to send".into()),
            Some(name) if name.len() > MAX_SEND_NAME => {
                entry.problem = Some(format!(
                    "its name is {} bytes; classroom servers read at most {MAX_SEND_NAME} (rename it)",
                    name.len()
                ));
            }
            Some(name) if taken.contains(name) => {
                let text = String::from_utf8_lossy(name).into_owned();
                let free = (1..=u32::MAX)
                    .map(|n| names::numbered(&text, n).into_bytes())
                    .find(|candidate| !taken.contains(candidate) && !all_own.contains(candidate))
                    .expect("some number is free");
                if free.len() > MAX_SEND_NAME {
                    entry.problem = Some(
                        "another file here has the same name, and a numbered one would be too long"
                            .into(),
                    );
                } else {
                    entry.renamed_from = Some(names::escape_for_terminal(name));
                    entry.name = free;
                }
            }
            Some(_) => {}
        }
        if entry.problem.is_none() {
            taken.insert(entry.name.clone());
        }
        planned.push(entry);
    }
    planned
}

/// The work the sender's total bar shows.
pub fn totals(planned: &[Planned]) -> Plan {
    Plan {
        files: planned.len() as u64,
        bytes: planned.iter().filter_map(|p| p.size).sum(),
    }
}

/// Uploads every planned file, at most `config.jobs` at a time, reporting each
/// to `events`; returns one report per file, in the order given.
pub fn upload_all(
    config: &SendConfig,
    addresses: &[SocketAddr],
    planned: &[Planned],
    events: &Sender<Event>,
) -> Vec<FileReport> {
    let (queue, work) = crossbeam_channel::bounded(planned.len().max(1));
    for entry in planned.iter().enumerate() {
        queue.send(entry).expect("queue has room for every file");
    }
    drop(queue);
    let reports = Mutex::new(vec![None; planned.len()]);
    let learned = Learned::default();
    let unreachable = OnceLock::new();
    thread::scope(|scope| {
        for _ in 0..config.jobs.min(planned.len()) {
            let work = work.clone();
            let (reports, learned, unreachable) = (&reports, &learned, &unreachable);
            scope.spawn(move || {
                for (index, entry) in &work {
                    let result = upload::Upload {
                        id: index as u64,
                        planned: entry,
                        config,
                        addresses,
                        events,
                        learned,
                        unreachable,
                    }
                    .run();
                    reports.lock().expect("reports lock")[index] = Some(FileReport {
                        name: entry.shown(),
                        renamed_from: entry.renamed_from.clone(),
                        result,
                    });
                }
            });
        }
    });
    reports
        .into_inner()
        .expect("reports lock")
        .into_iter()
        .map(|r| r.expect("every file has a report"))
        .collect()
}

/// The path as given, safe to print.
fn shown_path(path: &Path) -> String {
    names::escape_for_terminal(path.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(files: &[&str]) -> Vec<String> {
        let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        plan(&paths).iter().map(Planned::shown).collect()
    }

    #[test]
    fn sends_base_names_and_numbers_the_same_name_twice() {
        assert_eq!(names_of(&["data/sub/notes.txt"]), ["notes.txt"]);
        assert_eq!(
            names_of(&["a/x.bin", "b/x.bin", "c/x.bin"]),
            ["x.bin", "x (1).bin", "x (2).bin"]
        );
        // A numbered name never takes one that another file of the run has.
        assert_eq!(
            names_of(&["a/x.bin", "b/x.bin", "x (1).bin"]),
            ["x.bin", "x (2).bin", "x (1).bin"]
        );
        let planned = plan(&[PathBuf::from("a/x.bin"), PathBuf::from("b/x.bin")]);
        assert_eq!(planned[0].renamed_from, None);
        assert_eq!(planned[1].renamed_from.as_deref(), Some("x.bin"));
    }

    #[test]
    fn refuses_names_a_classroom_server_would_cut() {
        let longest = "n".repeat(MAX_SEND_NAME);
        let planned = plan(&[
            PathBuf::from(&longest),
            PathBuf::from(format!("{longest}x")),
            PathBuf::from(".."),
        ]);
        assert_eq!(planned[0].problem, None);
        assert_eq!(
            planned[1].problem.as_deref(),
            Some("its name is 1017 bytes; classroom servers read at most 1016 (rename it)")
        );
        assert_eq!(
            planned[2].problem.as_deref(),
            Some("has no file name to send")
        );
    }
}
