//! A guest's serial console, logged from its first byte into a file of bounded size.
//!
//! QEMU writes the console into a FIFO; a thread of ours copies it into `console.log`, the
//! first [`CONSOLE_MAX`] bytes of it. The guest decides how much it prints (a kernel in a
//! loop of oopses fills a disk), so the rest is read and counted, not kept, and a last line
//! says how much was dropped.
//!
//! Invariant: QEMU is never blocked on the console by us: the thread reads for as long as
//! QEMU writes, past the cap too.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The most of a console the log keeps.
pub const CONSOLE_MAX: u64 = 16 << 20;
/// How often the copying thread looks whether it is asked to stop.
const POLL: Duration = Duration::from_millis(200);

/// The copying of one console into its log; stops (and writes the log's last line) when
/// QEMU closes the console or when dropped.
pub struct ConsoleLog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConsoleLog {
    /// Make the FIFO `fifo` for QEMU to write the console into (`-chardev file,path=FIFO`)
    /// and start copying it into `log` (created now, empty), at most `cap` bytes.
    pub fn start(fifo: &Path, log: &Path, cap: u64) -> io::Result<ConsoleLog> {
        let _ = std::fs::remove_file(fifo);
        nix::unistd::mkfifo(
            fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .map_err(io::Error::from)?;
        // Open for reading first and without waiting: QEMU's open for writing then succeeds
        // at once, and nothing it writes is lost.
        let input = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)?;
        let output = File::create(log)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("console-log".into())
            .spawn(move || copy(input, output, cap, &stopping))?;
        Ok(ConsoleLog {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ConsoleLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copy `input` into `output` until its writer has come and gone (or `stop`), keeping the
/// first `cap` bytes; then note what was dropped.
fn copy(mut input: File, mut output: File, cap: u64, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 << 10];
    let (mut kept, mut dropped) = (0u64, 0u64);
    // Once asked to stop, what is already in the FIFO is still taken, but not forever: a
    // QEMU that is still running would keep the drop waiting.
    let mut reads_after_stop = 16;
    loop {
        let mut pfd = libc::pollfd {
            fd: input.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, owned by this frame, for a descriptor this function owns.
        let ready = unsafe { libc::poll(&mut pfd, 1, POLL.as_millis() as libc::c_int) };
        let stopping = stop.load(Ordering::Relaxed);
        if ready > 0 && pfd.revents & libc::POLLIN != 0 {
            match input.read(&mut buf) {
                // No writer left (QEMU has gone): the console is over.
                Ok(0) => break,
                Ok(n) => {
                    let keep = (cap.saturating_sub(kept)).min(n as u64) as usize;
                    if keep > 0 && output.write_all(&buf[..keep]).is_err() {
                        dropped += keep as u64;
                    } else {
                        kept += keep as u64;
                    }
                    dropped += (n - keep) as u64;
                    if stopping {
                        reads_after_stop -= 1;
                    }
                    if reads_after_stop > 0 {
                        continue;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(_) => break,
            }
        }
        let hung_up = ready > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0;
        let failed = ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted;
        if hung_up || failed || stopping {
            break;
        }
    }
    if dropped > 0 {
        let _ = writeln!(
            output,
            "\n[faultline: the console log keeps the first {} MiB; {dropped} more bytes were dropped]",
            cap >> 20
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(fifo: &Path) -> File {
        std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
    }

    #[test]
    fn a_console_past_the_cap_keeps_its_start_and_says_how_much_was_dropped() {
        let d = tempfile::tempdir().unwrap();
        let (fifo, log) = (d.path().join("console.fifo"), d.path().join("console.log"));
        let console = ConsoleLog::start(&fifo, &log, 1 << 20).unwrap();
        let mut w = writer(&fifo);
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..20 {
            w.write_all(&chunk).unwrap();
        }
        drop(w);
        drop(console);
        let text = std::fs::read(&log).unwrap();
        assert!(text.starts_with(&vec![b'x'; 1 << 20]));
        let rest = String::from_utf8_lossy(&text[1 << 20..]);
        let dropped = 20 * (64 << 10) - (1 << 20);
        assert_eq!(
            rest,
            format!(
                "\n[faultline: the console log keeps the first 1 MiB; {dropped} more bytes were dropped]\n"
            )
        );
    }

    #[test]
    fn a_console_within_the_cap_is_logged_whole_and_its_end_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let (fifo, log) = (d.path().join("console.fifo"), d.path().join("console.log"));
        let console = ConsoleLog::start(&fifo, &log, 1 << 20).unwrap();
        let mut w = writer(&fifo);
        w.write_all(b"[    0.000000] Linux version\r\n").unwrap();
        drop(w);
        // The writer's close ends the copy by itself.
        let t = std::time::Instant::now();
        while !console.thread.as_ref().unwrap().is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the copy did not see its writer go"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(console);
        assert_eq!(std::fs::read(&log).unwrap(), b"[    0.000000] Linux version\r\n");
    }

    #[test]
    fn a_console_never_opened_stops_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let (fifo, log) = (d.path().join("console.fifo"), d.path().join("console.log"));
        let console = ConsoleLog::start(&fifo, &log, 1 << 20).unwrap();
        let t = std::time::Instant::now();
        drop(console);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(std::fs::read(&log).unwrap(), b"");
    }
}
