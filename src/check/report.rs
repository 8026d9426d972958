//! How `ftx check` tells what it found: a line per case with a hint under each failure, NDJSON with `--json`, JUnit XML with `--junit`.

use std::io::Write;

use console::style;
use serde::Serialize;

use super::{Case, CheckConfig, Outcome, Target, Verdict};
use crate::term::human_duration;

/// Prints the cases (`--list`).
pub fn list(kind: &str, cases: &[Case]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ftx check {kind}: the cases");
    for case in cases {
        let mut notes = vec![case.rule.to_string()];
        if case.needs_dir {
            notes.push("needs --dir".into());
        }
        if case.strict {
            notes.push("--strict".into());
        }
        if case.exercise > 1 {
            notes.push(format!("exercise {}", case.exercise));
        }
        let _ = writeln!(
            out,
            "  {:<4} {}  ({})",
            case.id,
            case.title,
            notes.join(", ")
        );
    }
}

/// One case as `--json` writes it.
#[derive(Serialize)]
struct Record<'a> {
    id: &'a str,
    title: &'a str,
    rule: &'a str,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    got: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    seen: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'a str>,
    duration_ms: u64,
}

/// Reports cases as they end, and the whole run at the end.
pub struct CaseReporter {
    json: bool,
    junit: Option<std::path::PathBuf>,
    kind: &'static str,
}

impl CaseReporter {
    pub fn new(config: &CheckConfig) -> CaseReporter {
        CaseReporter {
            json: config.json,
            junit: config.junit.clone(),
            kind: config.target.kind(),
        }
    }

    pub fn begin(&self, target: &Target) {
        if self.json {
            return;
        }
        let what = match target {
            Target::Server {
                start: Some(command),
                ..
            } => format!(
                "the server {}, started for each case on a free port, in a scratch folder",
                command.join(" ")
            ),
            Target::Server { addr, dir, .. } => format!(
                "the server at {addr}{}",
                dir.as_ref()
                    .map(|d| format!(", saving into {}", d.display()))
                    .unwrap_or_default()
            ),
            Target::Client { command } => format!("the client {}", command.join(" ")),
        };
        println!("{} {what}", style("ftx check:").bold());
    }

    /// One line for the cases a later exercise asks for, left out.
    pub fn not_run(&self, exercise: u8, cases: &[Case]) {
        if self.json || cases.is_empty() {
            return;
        }
        let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        println!(
            "{} {} not run: {} several clients at once, which exercise {exercise} does not ask for \
             (--exercise 2 runs them)",
            style("-").dim(),
            ids.join(", "),
            if ids.len() == 1 { "it checks" } else { "they check" }
        );
    }

    pub fn case(&self, outcome: &Outcome) {
        let case = &outcome.case;
        if self.json {
            let (result, failure, skipped) = match &outcome.verdict {
                Verdict::Pass => ("pass", None, None),
                Verdict::Fail(f) => ("fail", Some(f), None),
                Verdict::Skip(why) => ("skip", None, Some(why.as_str())),
            };
            let record = Record {
                id: case.id,
                title: case.title,
                rule: case.rule,
                result,
                expected: failure.map(|f| f.expected.as_str()),
                got: failure.map(|f| f.got.as_str()),
                hint: failure.map(|f| f.hint.as_str()),
                seen: failure.map_or(&[], |f| f.seen.as_slice()),
                skipped,
                duration_ms: u64::try_from(outcome.took.as_millis()).unwrap_or(u64::MAX),
            };
            let mut out = std::io::stdout().lock();
            if serde_json::to_writer(&mut out, &record).is_ok() {
                let _ = out.write_all(b"\n");
            }
            return;
        }
        let title = format!("{:<4} {}", case.id, case.title);
        let line = match &outcome.verdict {
            Verdict::Pass => format!("{} {title}  ({})", style("✓").green().bold(), case.rule),
            Verdict::Fail(f) => {
                let mut text = format!("{} {title}  ({})", style("✗").red().bold(), case.rule);
                text.push_str(&format!("\n       expected: {}", f.expected));
                text.push_str(&format!("\n       got:      {}", f.got));
                for (n, fact) in f.seen.iter().enumerate() {
                    let label = if n == 0 { "seen:" } else { "" };
                    text.push_str(&format!("\n       {label:<10}{fact}"));
                }
                if !f.hint.is_empty() {
                    text.push_str(&format!(
                        "\n       {}     {}",
                        style("hint:").yellow(),
                        f.hint
                    ));
                }
                text
            }
            Verdict::Skip(why) => format!("{} {title}  (skipped: {why})", style("-").dim()),
        };
        println!("{line}");
    }

    /// The last line, and the JUnit file.
    pub fn end(&self, outcomes: &[Outcome]) -> anyhow::Result<()> {
        let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
        let passed = count(|v| matches!(v, Verdict::Pass));
        let failed = count(|v| matches!(v, Verdict::Fail(_)));
        let skipped = count(|v| matches!(v, Verdict::Skip(_)));
        if !self.json {
            let took: std::time::Duration = outcomes.iter().map(|o| o.took).sum();
            let skipped = if skipped > 0 {
                format!(", {skipped} skipped")
            } else {
                String::new()
            };
            println!(
                "{passed} passed, {failed} failed{skipped} in {}",
                human_duration(took)
            );
        }
        if let Some(path) = &self.junit {
            std::fs::write(path, junit(self.kind, outcomes)?)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// The run as JUnit XML: one test case per case, failures with their message.
fn junit(kind: &str, outcomes: &[Outcome]) -> anyhow::Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new(format!("ftx check {kind}"));
    for outcome in outcomes {
        let case = &outcome.case;
        let status = match &outcome.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail(f) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("expected {}; got {}", f.expected, f.got));
                let seen: String = f.seen.iter().map(|s| format!("\nseen: {s}")).collect();
                status.set_description(format!(
                    "rule {}\nexpected: {}\ngot: {}{seen}\nhint: {}",
                    case.rule, f.expected, f.got, f.hint
                ));
                status
            }
            Verdict::Skip(why) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(why.clone());
                status
            }
        };
        let mut test = TestCase::new(format!("{} {}", case.id, case.title), status);
        test.set_classname(format!("ftx.check.{kind}"));
        test.set_time(outcome.took);
        suite.add_test_case(test);
    }
    let mut report = Report::new("ftx check");
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}
