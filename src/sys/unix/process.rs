//! Processes on Unix (both layers; what macOS runs too): the file-size signal ignored, the open-files limit raised, process groups for `ftx check`'s programs.

use std::process::Command;

use rustix::process::{
    getrlimit, kill_process, kill_process_group, setrlimit, Pid, Resource, Signal,
};

/// With a file-size limit (`ulimit -f`) in force, a large upload must fail
/// on its own (`EFBIG`), not kill the process with `SIGXFSZ`.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours in a handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Raises the soft limit on open files to the hard one, so that thousands of
/// clients at once can each have a descriptor; returns the limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// Starts `command` in a process group of its own, so that [`kill_group`]
/// stops what it starts too.
pub fn own_group(command: &mut Command) {
    std::os::unix::process::CommandExt::process_group(command, 0);
}

/// Kills the process `pid`.
pub fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Kills every process of the group `pid` leads.
pub fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// Whether a process `pid` runs now; `None` where that cannot be told.
pub fn alive(pid: u32) -> Option<bool> {
    let pid = i32::try_from(pid).ok().and_then(Pid::from_raw)?;
    match rustix::process::test_kill_process(pid) {
        Ok(()) => Some(true),
        Err(rustix::io::Errno::SRCH) => Some(false),
        Err(_) => Some(true), // it exists, another user's
    }
}
