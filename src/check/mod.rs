//! `ftx check`: grades a student's server or client against the classroom protocol, case by case, each case bounded in time, with hints in a student's words.
//!
//! Like h2spec: numbered cases, each naming the rule of PROTOCOL.md it checks;
//! `--strict` adds cases the protocol leaves open; `--junit` and `--json` for
//! autograders. A peer that hangs, loops or never closes fails its case,
//! never the checker: every wait has a bound, and the whole default run has
//! [`RUN_BUDGET`].

mod client;
mod launch;
mod report;
mod server;
mod wire;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::address::Address;
use crate::exit_codes::Exit;
use crate::names;

/// The most a whole run may take; cases left when it is spent fail as not run.
pub const RUN_BUDGET: Duration = Duration::from_secs(60);

/// One case: what is checked, and against which rule.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub id: &'static str,
    pub title: &'static str,
    /// The rule of PROTOCOL.md it checks.
    pub rule: &'static str,
    /// Only with `--strict` (or when named): the protocol leaves it open.
    pub strict: bool,
    /// Needs to read the files the server saved (`--dir`).
    pub needs_dir: bool,
    /// The first exercise that asks for it: 1 (one client at a time) or 2
    /// (several at once).
    pub exercise: u8,
}

/// What came of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(CaseFailure),
    Skip(String),
}

/// A failed case: what was expected, what happened, what to do about it,
/// and the evidence it was judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    pub expected: String,
    pub got: String,
    pub hint: String,
    /// What the program did, a fact a line: bytes on the wire, how it ended,
    /// what it printed.
    pub seen: Vec<String>,
}

impl CaseFailure {
    pub fn new(
        expected: impl Into<String>,
        got: impl Into<String>,
        hint: impl Into<String>,
    ) -> CaseFailure {
        CaseFailure {
            expected: expected.into(),
            got: got.into(),
            hint: hint.into(),
            seen: Vec::new(),
        }
    }

    /// The same failure, with the evidence it was judged on.
    pub fn seen(mut self, seen: Vec<String>) -> CaseFailure {
        self.seen = seen;
        self
    }
}

/// A case and its verdict.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: Case,
    pub verdict: Verdict,
    pub took: Duration,
}

/// What to check, and how to report it.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub target: Target,
    /// The longest wait for any one thing (a reply, a close, a process).
    pub timeout: Duration,
    pub junit: Option<PathBuf>,
    pub json: bool,
    pub strict: bool,
    pub list: bool,
    /// The cases to run, by id; all when empty.
    pub cases: Vec<String>,
    /// The exercise graded (`--exercise`): cases a later one asks for are not run.
    pub exercise: u8,
}

/// The program under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// A server; `dir` is where it saves, to compare the files. With
    /// `start`, ftx check starts it for each case (`{port}`, `{dir}` filled in).
    Server {
        addr: Address,
        dir: Option<PathBuf>,
        big: u64,
        start: Option<Vec<String>>,
    },
    /// A client command line, with `{file}`, `{name}`, `{host}` and `{port}` to fill in.
    Client { command: Vec<String> },
}

impl Target {
    fn cases(&self) -> &'static [Case] {
        match self {
            Target::Server { .. } => server::CASES,
            Target::Client { .. } => client::CASES,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::Server { .. } => "server",
            Target::Client { .. } => "client",
        }
    }
}

impl CheckConfig {
    /// The cases this run takes, in order; unknown ids are a wrong command line.
    pub fn selected(&self) -> anyhow::Result<Vec<Case>> {
        let all = self.target.cases();
        for wanted in &self.cases {
            if !all.iter().any(|c| c.id.eq_ignore_ascii_case(wanted)) {
                let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
                bail!(
                    "there is no {} case '{wanted}': the cases are {} (see --list)",
                    self.target.kind(),
                    ids.join(", ")
                );
            }
        }
        Ok(all
            .iter()
            .filter(|c| {
                if self.cases.is_empty() {
                    (!c.strict || self.strict) && c.exercise <= self.exercise
                } else {
                    self.cases.iter().any(|w| c.id.eq_ignore_ascii_case(w))
                }
            })
            .copied()
            .collect())
    }

    /// The cases left out because a later exercise asks for them, when none were named.
    pub fn for_later_exercises(&self) -> Vec<Case> {
        if !self.cases.is_empty() {
            return Vec::new();
        }
        self.target
            .cases()
            .iter()
            .filter(|c| (!c.strict || self.strict) && c.exercise > self.exercise)
            .copied()
            .collect()
    }
}

/// Files the checker left in the student's folder and processes it started, to
/// clean up also on Ctrl-C.
#[derive(Debug, Default)]
struct Leftovers {
    files: Vec<PathBuf>,
    children: Vec<u32>,
    /// Process groups: a server started for a case, with whatever it started.
    groups: Vec<u32>,
}

static LEFTOVERS: OnceLock<Mutex<Leftovers>> = OnceLock::new();

fn leftovers() -> &'static Mutex<Leftovers> {
    LEFTOVERS.get_or_init(Mutex::default)
}

/// Removes what is left and kills what still runs.
fn clean_up() {
    let mut left = leftovers().lock().expect("leftovers lock");
    for file in left.files.drain(..) {
        let _ = std::fs::remove_file(file);
    }
    for pid in left.children.drain(..) {
        crate::sys::process::kill(pid);
    }
    for group in left.groups.drain(..) {
        crate::sys::process::kill_group(group);
    }
}

/// Starts a program under test (`args`, a program and its arguments, in
/// `folder`, its stderr into `stderr`), remembered so that the end of the
/// run and Ctrl-C stop it: in a process group of its own when `group`, so
/// that what it starts is stopped too.
fn start_program(
    args: &[String],
    folder: &std::path::Path,
    stderr: std::fs::File,
    group: bool,
) -> Result<std::process::Child, CaseFailure> {
    use std::process::{Command, Stdio};
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .current_dir(folder)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if group {
        crate::sys::process::own_group(&mut command);
    }
    let child = command.spawn().map_err(|e| {
        CaseFailure::new(
            format!("to start {}", args[0]),
            e.to_string(),
            "check the command after --: the program and its arguments",
        )
    })?;
    let mut left = leftovers().lock().expect("leftovers lock");
    if group {
        left.groups.push(child.id());
    } else {
        left.children.push(child.id());
    }
    Ok(child)
}

/// How the `who` under test ended, in words: its exit, and the last line
/// it printed on stderr (escaped).
fn how_it_ended(who: &str, status: std::process::ExitStatus, stderr: &str) -> String {
    let how = match status.code() {
        Some(code) => format!("the {who} exited with status {code}"),
        None => format!("the {who} was ended by a signal ({status})"),
    };
    match last_line(stderr) {
        said if said.is_empty() => how,
        said => format!("{how}: {said}"),
    }
}

/// The last line of `text`, escaped for the terminal.
fn last_line(text: &str) -> String {
    names::escape_for_terminal(text.trim().lines().last().unwrap_or("").as_bytes())
}

/// The command with its relative paths made absolute from `here`, the folder
/// `ftx check` runs in: the program runs in a scratch folder, where
/// `python3 client.py` would not find `client.py`. An argument is taken for
/// a path when something is there by that name; a program without a `/` is
/// left to be found on PATH, as a shell would.
fn resolved(command: Vec<String>, here: &std::path::Path) -> Vec<String> {
    command
        .into_iter()
        .enumerate()
        .map(|(n, arg)| {
            let path = std::path::Path::new(&arg);
            let a_path = (n > 0 || arg.contains('/')) && !arg.contains('{');
            if a_path && path.is_relative() && here.join(path).exists() {
                here.join(path).to_string_lossy().into_owned()
            } else {
                arg
            }
        })
        .collect()
}

/// Set by Ctrl-C (or SIGTERM).
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs `ftx check`: 0 when every case passed, 1 when any failed.
pub fn check(config: &CheckConfig) -> anyhow::Result<Exit> {
    let cases = config.selected()?;
    if config.list {
        report::list(config.target.kind(), &cases);
        return Ok(Exit::Success);
    }
    ctrlc::set_handler(|| {
        // Said first: killing the program under test ends its case, and the
        // run must not then end as if it had simply failed.
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        clean_up();
        crate::term::say_without_waiting(
            "\nftx check: interrupted; what it started is stopped and removed",
        );
        std::process::exit(Exit::Interrupted.code().into());
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    let reporter = report::CaseReporter::new(config);
    reporter.begin(&config.target);
    reporter.not_run(config.exercise, &config.for_later_exercises());
    let run_started = Instant::now();
    wire::set_run_deadline(run_started + RUN_BUDGET);
    let mut runner: Box<dyn FnMut(&Case) -> Verdict> = match &config.target {
        Target::Server {
            addr,
            dir,
            big,
            start,
        } => {
            let launcher = start
                .clone()
                .map(|command| {
                    let fixed = addr.resolve()?[0];
                    launch::Launcher::new(command, fixed, config.timeout)
                })
                .transpose()?;
            let mut probe = server::Probe::new(addr, dir.clone(), *big, config.timeout, launcher)?;
            Box::new(move |case| probe.run(case))
        }
        Target::Client { command } => {
            let mut lab = client::Lab::new(command.clone(), config.timeout)?;
            Box::new(move |case| lab.run(case))
        }
    };
    let mut outcomes = Vec::new();
    for case in cases {
        let started = Instant::now();
        let verdict = if run_started.elapsed() > RUN_BUDGET {
            Verdict::Fail(CaseFailure::new(
                "the case to run",
                format!(
                    "not run: the whole check's {}s were spent",
                    RUN_BUDGET.as_secs()
                ),
                "the cases before it waited for timeouts; fix those first",
            ))
        } else {
            runner(&case)
        };
        clean_up();
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            // The handler is ending the process with the exit code for Ctrl-C.
            return Ok(Exit::Interrupted);
        }
        let outcome = Outcome {
            case,
            verdict,
            took: started.elapsed(),
        };
        reporter.case(&outcome);
        outcomes.push(outcome);
    }
    drop(runner);
    clean_up();
    reporter.end(&outcomes)?;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Fail(_)))
        .count();
    Ok(Exit::from_failures(failed as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cases: &[&str], strict: bool) -> CheckConfig {
        CheckConfig {
            target: Target::Server {
                addr: Address::parse("12000", "127.0.0.1").unwrap(),
                dir: None,
                big: 1,
                start: None,
            },
            timeout: Duration::from_secs(1),
            junit: None,
            json: false,
            strict,
            list: false,
            cases: cases.iter().map(|c| c.to_string()).collect(),
            exercise: 2,
        }
    }

    #[test]
    fn strict_cases_run_only_when_asked_for() {
        let plain = config(&[], false).selected().unwrap();
        let strict = config(&[], true).selected().unwrap();
        assert!(plain.iter().all(|c| !c.strict));
        assert!(strict.len() > plain.len());
        let named = config(&["s14", "S1"], false).selected().unwrap();
        assert_eq!(
            named.iter().map(|c| c.id).collect::<Vec<_>>(),
            ["S1", "S14"]
        );
        let first = CheckConfig {
            exercise: 1,
            ..config(&[], false)
        };
        let later: Vec<&str> = first.for_later_exercises().iter().map(|c| c.id).collect();
        assert_eq!(later, ["S11", "S12"]);
        assert!(first.selected().unwrap().iter().all(|c| c.exercise == 1));
        let named = CheckConfig {
            exercise: 1,
            ..config(&["S11"], false)
        };
        assert_eq!(named.selected().unwrap().len(), 1, "a case named runs");
        let err = config(&["S99"], false).selected().unwrap_err();
        assert!(
            err.to_string().contains("there is no server case 'S99'"),
            "{err}"
        );
    }

    #[test]
    fn every_case_names_a_rule_of_the_protocol_doc() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"));
        for case in server::CASES.iter().chain(client::CASES) {
            for rule in case.rule.split(", ") {
                assert!(
                    doc.contains(&format!("**{rule} ")),
                    "{}: {rule} is not in PROTOCOL.md",
                    case.id
                );
            }
        }
    }
}
