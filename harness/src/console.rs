//! Where a command's lines go. Commands in the library never print: they hand every line to a
//! [`Console`], and the caller decides where it goes (the binary: stdout for results, stderr
//! for the rest; the test binaries: their own layout).
//!
//! Architecture invariant: results (what a script reads: an arm's outcome, an image's cache
//! entry) go to [`Console::out`] or [`Console::done`], and nothing else does.

use std::io::IsTerminal;
use std::time::Instant;

/// Lines of a running command. `Sync`: image builds run in parallel and report from each.
pub trait Console: Sync {
    /// A result line (stdout).
    fn out(&self, line: &str);
    /// A note or an error (stderr, a line of its own).
    fn note(&self, line: &str);
    /// What is under way; the next progress line may replace it.
    fn progress(&self, line: &str) {
        self.note(line)
    }
    /// A finished piece of work (an arm): ends the progress line, then goes out as a result.
    fn done(&self, line: &str) {
        self.out(line)
    }
}

/// The binary's console: stdout and stderr. Progress lines are plain, or, for a run, timed
/// from the start and rewritten in place when stderr is a terminal.
pub struct Terminal {
    /// `Some` for a run: progress lines carry the time since this instant.
    timed: Option<Instant>,
    /// Rewrite progress lines in place (stderr was a terminal when the run started).
    tty: bool,
}

impl Terminal {
    /// Every line as it comes.
    pub fn plain() -> Terminal {
        Terminal {
            timed: None,
            tty: false,
        }
    }

    /// A run's progress: `[  12.3 s] line`, one line rewritten in place on a terminal.
    pub fn timed() -> Terminal {
        Terminal {
            timed: Some(Instant::now()),
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Console for Terminal {
    fn out(&self, line: &str) {
        println!("{line}");
    }

    fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    fn progress(&self, line: &str) {
        let Some(start) = self.timed else {
            return eprintln!("{line}");
        };
        let t = start.elapsed().as_secs_f64();
        if self.tty && std::io::stderr().is_terminal() {
            let mut l: String = format!("[{t:6.1} s] {line}").chars().take(150).collect();
            l = l.replace('\n', " ");
            eprint!("\r\x1b[K{l}");
        } else {
            eprintln!("[{t:6.1} s] {line}");
        }
    }

    fn done(&self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        println!("{line}");
    }
}
