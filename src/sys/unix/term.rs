//! The terminal on Unix (both layers; what macOS runs too): echo off while bars are drawn (termios), and a last line written without waiting.

use std::os::fd::AsFd;

use rustix::termios::{
    tcflush, tcgetattr, tcsetattr, LocalModes, OptionalActions, QueueSelector, Termios,
};

/// Writes a last line to stderr without waiting, and without std's stderr
/// lock, which a thread stuck writing to a full pipe may hold.
pub fn say_without_waiting(line: &str) {
    let stderr = std::io::stderr();
    let fd = stderr.as_fd();
    if let Ok(flags) = rustix::fs::fcntl_getfl(fd) {
        let _ = rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK);
        let _ = rustix::io::write(fd, format!("{line}\n").as_bytes());
        let _ = rustix::fs::fcntl_setfl(fd, flags);
    }
}

/// The terminal's settings before [`quiet_echo`] changed them, to put back.
static SAVED: std::sync::Mutex<Option<Termios>> = std::sync::Mutex::new(None);

/// Stops the terminal from echoing what is typed. Undone by [`restore`].
pub fn quiet_echo() {
    let stdin = std::io::stdin();
    let Ok(mut settings) = tcgetattr(&stdin) else {
        return; // not a terminal
    };
    let echoes = LocalModes::ECHO | LocalModes::ECHOCTL;
    let mut saved = SAVED.lock().expect("termios lock");
    if saved.is_none() && settings.local_modes.intersects(echoes) {
        *saved = Some(settings.clone());
        settings.local_modes.remove(echoes);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &settings);
    }
}

/// Puts back what [`quiet_echo`] changed, if anything. What was typed
/// meanwhile, unseen, is thrown away rather than left for the shell to run.
pub fn restore() {
    if let Some(settings) = SAVED.lock().expect("termios lock").take() {
        let _ = tcflush(std::io::stdin(), QueueSelector::IFlush);
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &settings);
    }
}
