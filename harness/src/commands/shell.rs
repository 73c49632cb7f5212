//! `faultline shell GUEST`: the client side of a kept lab's `shell.sock` ([`crate::shell`] is
//! the server). One command with `-c` (exit code: the guest command's), or a command per line
//! of input until it ends (exit 0).
//!
//! Architecture invariant: the guest's stdout and stderr go to the writers given, byte for
//! byte; only the prompt and the client's own errors go to the error writer besides.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::command_error::CommandError;
use crate::exit::Exit;

/// What `faultline shell` was asked for.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// The guest (filer, imap1, ...).
    pub guest: String,
    /// The kept run's folder.
    pub run: PathBuf,
    /// This one command instead of commands read from the input.
    pub command: Option<String>,
}

/// The kept lab's socket, through the run folder's link; a dead link means the lab is gone.
fn kept_socket(run: &Path) -> Result<PathBuf, CommandError> {
    let link = run.join("shell.sock");
    let socket = std::fs::read_link(&link).unwrap_or(link);
    if !socket.exists() {
        return Err(CommandError::Input(format!(
            "{} has no kept lab (start one with `faultline run CASE --arm ARM --keep`)",
            run.display()
        )));
    }
    Ok(socket)
}

/// Run `o.command`, or each line of `input`, in the guest. Returns the exit code: the guest
/// command's for `-c` (1 if it does not fit), 0 at the end of the input.
pub fn shell(
    o: &ShellOptions,
    input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> Result<u8, CommandError> {
    let socket = kept_socket(&o.run)?;
    let rt = crate::suite::runtime();
    let one = |cmd: &str, out: &mut dyn Write, err: &mut dyn Write| -> Result<i64, String> {
        let r = rt
            .block_on(crate::shell::request(&socket, &o.guest, cmd))
            .map_err(|e| e.to_string())?;
        if let Some(e) = r.error {
            return Err(e);
        }
        let _ = write!(out, "{}", r.stdout);
        let _ = write!(err, "{}", r.stderr);
        Ok(r.exit_code)
    };
    if let Some(c) = &o.command {
        return match one(c, &mut out, &mut err) {
            Ok(code) => Ok(u8::try_from(code).unwrap_or(1)),
            Err(e) => Err(CommandError::Broken(e)),
        };
    }
    let mut lines = input.lines();
    loop {
        let _ = write!(err, "{}# ", o.guest);
        let _ = err.flush();
        let Some(Ok(line)) = lines.next() else {
            return Ok(Exit::Ok.code());
        };
        let cmd = line.trim();
        if cmd.is_empty() {
            continue;
        }
        if let Err(e) = one(cmd, &mut out, &mut err) {
            let _ = writeln!(err, "error: {e}");
        }
    }
}
