//! `ftx check server -- COMMAND`: starts the student's server afresh for each case, on a free port in a scratch folder, and stops it after, so that one fault never fails the cases after it.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::{leftovers, wire, CaseFailure};

/// How the server is started.
#[derive(Debug)]
pub struct Launcher {
    /// The command, its relative paths made absolute.
    command: Vec<String>,
    /// Where the server listens when the command has no `{port}`.
    fixed: SocketAddr,
    timeout: Duration,
}

/// One start of the server, for one case: stopped when dropped.
pub struct Started {
    child: Child,
    pub addr: SocketAddr,
    /// The scratch folder it runs in and saves into (`{dir}`).
    pub dir: tempfile::TempDir,
    /// Its stderr, kept outside the folder it saves into.
    stderr: tempfile::NamedTempFile,
}

impl Launcher {
    pub fn new(
        command: Vec<String>,
        fixed: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<Launcher> {
        let here = std::env::current_dir()?;
        Ok(Launcher {
            command: super::resolved(command, &here),
            fixed,
            timeout,
        })
    }

    /// Starts the server and waits until it listens (without connecting to it:
    /// a connection that brings no header is a case of its own).
    pub fn start(&self) -> Result<Started, CaseFailure> {
        let scratch = |e: std::io::Error| CaseFailure::new("a scratch folder", e.to_string(), "");
        let dir = tempfile::tempdir().map_err(scratch)?;
        let stderr = tempfile::NamedTempFile::new().map_err(scratch)?;
        let takes_port = self.command.iter().any(|a| a.contains("{port}"));
        let addr = if takes_port {
            free_port().map_err(scratch)?
        } else {
            self.fixed
        };
        let port = addr.port().to_string();
        let folder = dir.path().to_string_lossy().into_owned();
        let args: Vec<String> = self
            .command
            .iter()
            .map(|a| a.replace("{port}", &port).replace("{dir}", &folder))
            .collect();
        let child =
            super::start_program(&args, dir.path(), stderr.reopen().map_err(scratch)?, true)?;
        let mut started = Started {
            child,
            addr,
            dir,
            stderr,
        };
        let deadline = Instant::now() + wire::bounded(self.timeout);
        loop {
            if let Some((ended, _)) = started.ended() {
                let hint = if takes_port {
                    "does it start? Run the command yourself; {port} is replaced by a free port, {dir} by the folder to save into"
                } else {
                    "take the port from the command line (put {port} in the command, read sys.argv): a port given in the program may still be taken"
                };
                return Err(CaseFailure::new(
                    format!("the server to listen on port {port}"),
                    ended,
                    hint,
                ));
            }
            if crate::sys::net::listening_on(addr).unwrap_or(true) {
                return Ok(started);
            }
            if Instant::now() >= deadline {
                return Err(CaseFailure::new(
                    format!("the server to listen on port {port}"),
                    format!(
                        "not listening after {}",
                        crate::term::human_duration(self.timeout)
                    ),
                    "does it listen on the port given as {port}? bind((\"\", int(sys.argv[1]))), then listen()",
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Started {
    /// How the server ended, if it has: its exit and the last line it
    /// printed on stderr, and whether it exited by itself with status 0.
    pub fn ended(&mut self) -> Option<(String, bool)> {
        let status = self.child.try_wait().ok().flatten()?;
        Some((self.describe(status), status.success()))
    }

    /// As [`Started::ended`], waiting up to `wait` for it to end.
    pub fn ended_within(&mut self, wait: Duration) -> Option<(String, bool)> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(ended) = self.ended() {
                return Some(ended);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn describe(&self, status: ExitStatus) -> String {
        let said = std::fs::read(self.stderr.path()).unwrap_or_default();
        super::how_it_ended("server", status, &String::from_utf8_lossy(&said))
    }

    /// The folder it saves into.
    pub fn folder(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        crate::sys::process::kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let id = self.child.id();
        leftovers()
            .lock()
            .expect("leftovers lock")
            .groups
            .retain(|&g| g != id);
    }
}

/// A loopback port no one listens on now.
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
