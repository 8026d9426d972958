//! The terminal as the live view draws on it: lines that end before the last column with a newline of their own, and the whole screen painted again when its size changes.
//!
//! indicatif pads every line it draws to the terminal's full width and lets
//! the terminal's auto-wrap take the cursor to the next row. A terminal that
//! reflows on a resize (tmux, most modern ones) then treats the whole live
//! region as one long wrapped line: shrinking it splits every bar over
//! several rows, and the next redraw, which moves up as many rows as it drew,
//! lands in the middle and leaves copies of bars above. [`Screen`] is the
//! terminal indicatif draws on instead: it says it is one column narrower
//! than it is, ends each line with "erase to the end of the row" and a real
//! newline, and notes any change of size it sees so that the live view can
//! clear the screen and paint it afresh (see `Bars::repaint`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use console::Term;
use indicatif::TermLike;

/// Erase from the cursor to the end of its row.
const ERASE_TO_END: &str = "\x1b[K";

/// The cursor to the top left, and everything on the screen erased.
pub(super) const CLEAR_SCREEN: &str = "\x1b[H\x1b[J";

/// stderr, for indicatif to draw on (see the module's text).
#[derive(Debug)]
pub(super) struct Screen {
    term: Term,
    frame: Mutex<Frame>,
    /// The size seen when drawing last, and whether it changed since the live view last asked.
    size: Mutex<(u16, u16)>,
    resized: Arc<AtomicBool>,
}

/// Where a drawing is: indicatif writes each line and then its padding.
#[derive(Debug, Default)]
struct Frame {
    /// Lines written since the cursor was put at the start of the drawing.
    lines: usize,
    /// The last write was a line: the next is its padding.
    padding_next: bool,
}

impl Screen {
    pub fn stderr() -> Screen {
        let term = Term::buffered_stderr();
        let size = term.size();
        Screen {
            term,
            frame: Mutex::new(Frame::default()),
            size: Mutex::new(size),
            resized: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag set whenever a drawing finds the terminal's size changed.
    pub fn resized_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.resized)
    }

    /// The terminal's size now (rows, columns), noting a change.
    fn size(&self) -> (u16, u16) {
        let now = self.term.size();
        let mut seen = self.size.lock().expect("screen size lock");
        if *seen != now {
            *seen = now;
            self.resized.store(true, Ordering::Relaxed);
        }
        now
    }

    fn frame(&self) -> std::sync::MutexGuard<'_, Frame> {
        self.frame.lock().expect("screen frame lock")
    }
}

impl TermLike for Screen {
    /// One column less than the terminal has: a line never reaches the last
    /// column, where the cursor would wait to wrap.
    fn width(&self) -> u16 {
        self.size().1.saturating_sub(1).max(1)
    }

    fn height(&self) -> u16 {
        self.size().0
    }

    /// Only ever called to go back to the start of what was drawn last.
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        *self.frame() = Frame::default();
        self.term.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.term.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.term.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.term.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)?;
        self.write_str("")
    }

    /// A line goes on a row of its own (a newline before every line but the
    /// first of a drawing); its padding becomes "erase to the end of the row".
    fn write_str(&self, s: &str) -> io::Result<()> {
        let mut frame = self.frame();
        if frame.padding_next {
            frame.padding_next = false;
            return self.term.write_str(ERASE_TO_END);
        }
        if frame.lines > 0 {
            self.term.write_str("\r\n")?;
        }
        frame.lines += 1;
        frame.padding_next = true;
        self.term.write_str(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        *self.frame() = Frame::default();
        self.term.clear_line()
    }

    fn flush(&self) -> io::Result<()> {
        self.term.flush()
    }
}
