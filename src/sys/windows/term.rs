//! The terminal on Windows, for the portable layer: echo off while bars are drawn through the console mode (windows-sys); not compiled on the machines ftx is tested on.

use std::io::Write;
use std::sync::Mutex;

use windows_sys::Win32::System::Console::{
    GetConsoleMode, GetStdHandle, SetConsoleMode, ENABLE_ECHO_INPUT, STD_INPUT_HANDLE,
};

/// The console's input mode before [`quiet_echo`] changed it.
static SAVED: Mutex<Option<u32>> = Mutex::new(None);

/// Writes a last line to stderr (std's lock is taken: Windows has no non-blocking console write ftx uses).
pub fn say_without_waiting(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Turns the console's echo of typed keys off. Undone by [`restore`].
pub fn quiet_echo() {
    let mut mode = 0;
    // SAFETY: GetStdHandle has no preconditions; GetConsoleMode writes one
    // CONSOLE_MODE through a pointer to `mode`, and fails on a handle that is not a console.
    unsafe {
        let input = GetStdHandle(STD_INPUT_HANDLE);
        if GetConsoleMode(input, &mut mode) == 0 || mode & ENABLE_ECHO_INPUT == 0 {
            return;
        }
        let mut saved = SAVED.lock().expect("console lock");
        if saved.is_none() && SetConsoleMode(input, mode & !ENABLE_ECHO_INPUT) != 0 {
            *saved = Some(mode);
        }
    }
}

/// Puts back the mode [`quiet_echo`] changed, if it did.
pub fn restore() {
    if let Some(mode) = SAVED.lock().expect("console lock").take() {
        // SAFETY: as in quiet_echo; SetConsoleMode takes the mode by value.
        unsafe {
            SetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), mode);
        }
    }
}
