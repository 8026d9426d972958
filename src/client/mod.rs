//! The sender as a library: plan what each file is sent as, upload them `jobs` at a time, and return what came of each, in the order given.

mod batch;
mod connect;
pub mod hello;
mod secret;
mod upload;
mod verdict;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Mutex;
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
    /// The claim token of the first file's receipt (PROTOCOL.md B4a).
    pub claim: Mutex<Option<String>>,
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
    /// Its path in a batch (PROTOCOL.md B3): `top/inside/name` for a file of a
    /// folder given, its name for a file given.
    pub batch_path: String,
    /// The top folder it belongs to (the folder given, numbered if another folder of the run has that name).
    pub top: Option<String>,
}

impl Planned {
    /// The name sent, safe to print.
    pub fn shown(&self) -> String {
        names::escape_for_terminal(&self.name)
    }
}

/// What a run sends: its files, the empty folders in the folders given, and the links not followed.
#[derive(Debug, Default)]
pub struct Run {
    pub files: Vec<Planned>,
    /// Empty folders, as batch paths (`top/inside`).
    pub empty_dirs: Vec<String>,
    /// Symbolic links met in the folders given: not followed, not sent.
    pub links: Vec<String>,
    /// The folders given, by the top folder name they are sent as.
    pub folders: HashMap<String, PathBuf>,
}

/// A file to send, and where it sits in a folder given.
struct Source {
    path: PathBuf,
    /// (the folder given's name, the path inside it).
    within: Option<(String, String)>,
    /// Its size if it is known to be a regular file (a folder's walk learns it
    /// from the folder, which is cheaper than by its path).
    size: Option<u64>,
}

/// Decides what every file is sent as. Folders given are walked (links are
/// not followed); a file keeps its base name, and every file after the first
/// with a base name already taken gets a numbered one, `notes (1).txt`, that no
/// other file of the run has: a classroom server writes `NAME.temp`, and two
/// uploads of one name would land in one file. Folders given keep their
/// names for a batch, numbered the same way when two have one name.
pub fn plan(args: &[PathBuf]) -> Run {
    let mut run = Run::default();
    let mut sources = Vec::new();
    let mut tops: HashSet<String> = HashSet::new();
    for arg in args {
        let meta = std::fs::symlink_metadata(arg);
        if !meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            // A regular file's size is known now; a link's is asked through it later.
            let size = regular_size(meta);
            sources.push(Source {
                path: arg.clone(),
                within: None,
                size,
            });
            continue;
        }
        let own = std::fs::canonicalize(arg)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "folder".into());
        let top = (0..=u32::MAX)
            .map(|n| names::numbered(&own, n))
            .find(|t| !tops.contains(t))
            .expect("some number is free");
        tops.insert(top.clone());
        run.folders.insert(top.clone(), arg.clone());
        let before = sources.len();
        walk(arg, &top, "", &mut sources, &mut run);
        if sources.len() == before
            && !run
                .empty_dirs
                .iter()
                .any(|d| d.starts_with(&format!("{top}/")))
        {
            run.empty_dirs.push(top);
        }
    }
    run.files = name(&sources);
    run
}

/// Adds the files below `dir` (sorted, links skipped) as sources of the folder `top`.
fn walk(dir: &Path, top: &str, inside: &str, sources: &mut Vec<Source>, run: &mut Run) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        // Unreadable: the folder itself is sent as a file, and fails with the reason.
        sources.push(Source {
            path: dir.to_path_buf(),
            within: Some((top.to_string(), inside.trim_end_matches('/').to_string())),
            size: None,
        });
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let sizes = sizes_of(&entries);
    for (entry, size) in entries.into_iter().zip(sizes) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let inner = format!("{inside}{name}");
        match entry.file_type() {
            Ok(kind) if kind.is_symlink() => {
                run.links.push(names::escape_for_terminal(
                    path.as_os_str().as_encoded_bytes(),
                ));
            }
            Ok(kind) if kind.is_dir() => {
                let before = (sources.len(), run.empty_dirs.len());
                walk(&path, top, &format!("{inner}/"), sources, run);
                if (sources.len(), run.empty_dirs.len()) == before {
                    run.empty_dirs.push(format!("{top}/{inner}"));
                }
            }
            _ => {
                sources.push(Source {
                    path,
                    within: Some((top.to_string(), inner)),
                    size,
                });
            }
        }
    }
}

/// A folder's entries from this many up are looked at on every core: a
/// look is a system call each, and the walk comes before the first byte goes.
const LOOK_IN_PARALLEL_FROM: usize = 512;

/// The size of each of `entries` that is a regular file (`None` for the
/// rest), looked at from the folder; on every core for a big folder.
fn sizes_of(entries: &[std::fs::DirEntry]) -> Vec<Option<u64>> {
    let size = |entry: &std::fs::DirEntry| regular_size(entry.metadata());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if entries.len() < LOOK_IN_PARALLEL_FROM || cores < 2 {
        return entries.iter().map(size).collect();
    }
    let share = entries.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let looks: Vec<_> = entries
            .chunks(share)
            .map(|some| scope.spawn(move || some.iter().map(size).collect::<Vec<_>>()))
            .collect();
        looks
            .into_iter()
            .flat_map(|look| look.join().expect("a look at a folder's entries"))
            .collect()
    })
}

/// The size of a regular file; `None` for anything else, or what cannot be looked at.
fn regular_size(meta: std::io::Result<std::fs::Metadata>) -> Option<u64> {
    meta.ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
}

/// Names every source: base names, numbered where taken (see [`plan`]).
fn name(sources: &[Source]) -> Vec<Planned> {
    let own: Vec<Option<Vec<u8>>> = sources
        .iter()
        .map(|s| s.path.file_name().map(|n| n.as_encoded_bytes().to_vec()))
        .collect();
    // A numbered name must not take one that a later file has as its own.
    let all_own: HashSet<&Vec<u8>> = own.iter().flatten().collect();
    let mut taken: HashSet<Vec<u8>> = HashSet::new();
    let mut planned = Vec::with_capacity(sources.len());
    for (source, own) in sources.iter().zip(&own) {
        let size = source
            .size
            .or_else(|| regular_size(std::fs::metadata(&source.path)));
        let mut entry = Planned {
            path: source.path.clone(),
            name: own.clone().unwrap_or_default(),
            renamed_from: None,
            size,
            problem: None,
            batch_path: String::new(),
            top: source.within.as_ref().map(|(top, _)| top.clone()),
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
        entry.batch_path = match &source.within {
            Some((top, inside)) => format!("{top}/{inside}"),
            None => String::from_utf8_lossy(&entry.name).into_owned(),
        };
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

/// What the files of a run have come to so far, for whoever must tell it
/// before the run ends: an interrupted `ftx send` prints its table from it.
#[derive(Debug)]
pub struct SoFar {
    reports: Mutex<Vec<Option<FileReport>>>,
    /// What each file would be reported as had it not been sent.
    not_sent: Vec<FileReport>,
    /// Which files the server keeps a part of when cut off (big files of a
    /// verified batch, PROTOCOL.md B8): set once the files go in batches.
    resumable: Vec<bool>,
    batched: AtomicBool,
}

/// How a file not sent because the run was interrupted is reported.
pub const NOT_SENT_INTERRUPTED: &str = "not sent: interrupted (Ctrl-C)";

impl SoFar {
    pub fn new(run: &Run, config: &SendConfig) -> SoFar {
        let not_sent = run
            .files
            .iter()
            .map(|planned| FileReport {
                name: planned.shown(),
                renamed_from: planned.renamed_from.clone(),
                result: Err(NOT_SENT_INTERRUPTED.into()),
                folder: planned
                    .top
                    .as_ref()
                    .map(|top| names::escape_for_terminal(top.as_bytes())),
                timed: true,
            })
            .collect();
        let resumable = run
            .files
            .iter()
            .map(|planned| {
                config.verify
                    && planned
                        .size
                        .is_some_and(|size| size >= crate::protocol::batch::WORTH_RESUMING)
            })
            .collect();
        SoFar {
            reports: Mutex::new(vec![None; run.files.len()]),
            not_sent,
            resumable,
            batched: AtomicBool::new(false),
        }
    }

    /// A report per file as things stand: the file's own if it has ended,
    /// [`NOT_SENT_INTERRUPTED`] if not; and the files among those not ended
    /// that the server keeps a part of.
    pub fn now(&self) -> (Vec<FileReport>, Vec<usize>) {
        let reports = self.reports.lock().expect("reports lock").clone();
        let batched = self.batched.load(std::sync::atomic::Ordering::Relaxed);
        let mut resumable = Vec::new();
        let reports = reports
            .into_iter()
            .zip(&self.not_sent)
            .enumerate()
            .map(|(index, (report, not_sent))| {
                report.unwrap_or_else(|| {
                    if batched && self.resumable[index] {
                        resumable.push(index);
                    }
                    not_sent.clone()
                })
            })
            .collect();
        (reports, resumable)
    }
}

/// What every upload of a run shares.
struct Context<'a> {
    config: &'a SendConfig,
    addresses: &'a [SocketAddr],
    events: &'a Sender<Event>,
    learned: Learned,
    reach: connect::Reach,
    so_far: &'a SoFar,
}

impl Context<'_> {
    /// One report per file of the run, in the order given.
    fn into_reports(self, run: &Run) -> Vec<FileReport> {
        // A copy: a Ctrl-C now still finds every report there.
        let reports = self.so_far.reports.lock().expect("reports lock").clone();
        reports
            .into_iter()
            .zip(&run.files)
            .map(|(report, planned)| {
                // Every path reports every file; should one slip, it is a failure, never a success.
                let mut report = report.unwrap_or_else(|| FileReport {
                    name: planned.shown(),
                    renamed_from: None,
                    result: Err("ftx lost track of this file (a bug: please report it)".into()),
                    folder: None,
                    timed: true,
                });
                report.folder = planned
                    .top
                    .as_ref()
                    .map(|top| names::escape_for_terminal(top.as_bytes()));
                report
            })
            .collect()
    }

    fn report(&self, index: usize, report: FileReport) {
        self.so_far.reports.lock().expect("reports lock")[index] = Some(report);
    }

    /// The files go in batches from now on.
    fn batch(&self, run: &Run, first: Option<usize>) {
        self.so_far
            .batched
            .store(true, std::sync::atomic::Ordering::Relaxed);
        batch::send(self, run, first);
    }

    /// Uploads the files at `indices` classically, `jobs` at a time.
    fn classic(&self, run: &Run, indices: &[usize]) {
        let (queue, work) = crossbeam_channel::bounded(indices.len().max(1));
        for index in indices {
            queue.send(*index).expect("queue has room for every file");
        }
        drop(queue);
        thread::scope(|scope| {
            for _ in 0..self.config.jobs.min(indices.len()) {
                let work = work.clone();
                scope.spawn(move || {
                    for index in &work {
                        let entry = &run.files[index];
                        let result = upload::Upload {
                            id: index as u64,
                            planned: entry,
                            config: self.config,
                            addresses: self.addresses,
                            events: self.events,
                            learned: &self.learned,
                            reach: &self.reach,
                        }
                        .run();
                        self.report(
                            index,
                            FileReport {
                                name: entry.shown(),
                                renamed_from: entry.renamed_from.clone(),
                                result,
                                folder: None,
                                timed: true,
                            },
                        );
                    }
                });
            }
        });
    }
}

/// Uploads every planned file and returns one report per file, in the order
/// given. Classically, `jobs` at a time; or, once the server's receipt for the
/// first file says it speaks batch mode (PROTOCOL.md B1), the rest in at most
/// `jobs` batches, a folder given in one batch. Each file's report is in
/// `so_far` (made for this run) as soon as it ends.
pub fn upload_all(
    config: &SendConfig,
    addresses: &[SocketAddr],
    run: &Run,
    events: &Sender<Event>,
    so_far: &SoFar,
) -> Vec<FileReport> {
    let context = Context {
        config,
        addresses,
        events,
        learned: Learned::default(),
        reach: connect::Reach::default(),
        so_far,
    };
    if !run.links.is_empty() {
        let _ = events.send(Event::Notice(format!(
            "ftx: {} not sent: symbolic links are not followed ({})",
            crate::term::plural(run.links.len() as u64, "link", "links"),
            run.links.join(", ")
        )));
    }
    if config.ftx {
        // Told the server is ftx: no classic first file to learn it from.
        context.batch(run, None);
        return context.into_reports(run);
    }
    let sendable = run.files.iter().any(|f| f.problem.is_none());
    let said = (!config.classic && sendable)
        .then(|| {
            hello::ask(config, addresses, &context.reach, |text| {
                if config.trace {
                    let _ = events.send(Event::Trace { id: 0, text });
                }
            })
        })
        .flatten();
    if said.is_some_and(|s| s.batch >= crate::protocol::batch::VERSION) {
        // It said it is ftx before the first byte (PROTOCOL.md section 5):
        // every file goes in batches, the first one too.
        context
            .learned
            .ftx
            .store(true, std::sync::atomic::Ordering::Relaxed);
        context.batch(run, None);
        return context.into_reports(run);
    }
    // The smallest file goes first, alone and classically: its receipt tells
    // soonest whether the server speaks batch mode, and the big ones are left
    // to batches (verified, resumable).
    let first = (0..run.files.len())
        .filter(|&i| run.files[i].problem.is_none())
        .min_by_key(|&i| run.files[i].size.unwrap_or(u64::MAX))
        .unwrap_or(0);
    let batched = !config.classic && run.files.len() > 1 && {
        context.classic(run, &[first]);
        context
            .learned
            .batch
            .load(std::sync::atomic::Ordering::Relaxed)
            >= crate::protocol::batch::VERSION
    };
    if batched {
        context.batch(run, Some(first));
    } else {
        let rest: Vec<usize> = (0..run.files.len())
            .filter(|&i| config.classic || run.files.len() == 1 || i != first)
            .collect();
        context.classic(run, &rest);
        if !run.empty_dirs.is_empty() {
            let _ = events.send(Event::Notice(format!(
                "ftx: {} not sent: a classroom server takes files only ({})",
                crate::term::plural(run.empty_dirs.len() as u64, "empty folder", "empty folders"),
                run.empty_dirs.join(", ")
            )));
        }
    }
    context.into_reports(run)
}

/// The path as given, safe to print.
pub(super) fn shown_path(path: &Path) -> String {
    names::escape_for_terminal(path.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(files: &[&str]) -> Vec<String> {
        let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        plan(&paths).files.iter().map(Planned::shown).collect()
    }

    /// A folder big enough to be looked at on every core is planned as one
    /// looked at entry by entry: every file with its own size, in order, the
    /// folder and the link inside it not taken for files.
    #[test]
    fn a_big_folder_is_planned_with_each_file_its_own_size() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("big");
        std::fs::create_dir_all(top.join("inner")).unwrap();
        std::fs::write(top.join("inner/deep.txt"), b"deep").unwrap();
        let count = LOOK_IN_PARALLEL_FROM + 100;
        for n in 0..count {
            std::fs::write(top.join(format!("f{n:04}.bin")), vec![7u8; n]).unwrap();
        }
        #[cfg(unix)]
        crate::sys::testing::symlink(Path::new("f0001.bin"), &top.join("link"));
        let run = plan(&[top]);
        let sizes: Vec<(String, Option<u64>)> = run
            .files
            .iter()
            .map(|f| (f.batch_path.clone(), f.size))
            .collect();
        let mut expected: Vec<(String, Option<u64>)> = (0..count)
            .map(|n| (format!("big/f{n:04}.bin"), Some(n as u64)))
            .collect();
        expected.push(("big/inner/deep.txt".to_string(), Some(4)));
        assert_eq!(sizes, expected);
        #[cfg(unix)]
        assert_eq!(run.links.len(), 1, "{:?}", run.links);
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
        let planned = plan(&[PathBuf::from("a/x.bin"), PathBuf::from("b/x.bin")]).files;
        assert_eq!(planned[0].renamed_from, None);
        assert_eq!(planned[1].renamed_from.as_deref(), Some("x.bin"));
    }

    #[test]
    fn refuses_names_a_classroom_server_would_cut() {
        let longest = "n".repeat(MAX_SEND_NAME);
        let planned = plan(&[
            PathBuf::from(&longest),
            PathBuf::from(format!("{longest}x")),
            PathBuf::from("no-such-folder/.."),
        ])
        .files;
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
