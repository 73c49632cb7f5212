//! Child processes that cannot outlive the harness.
//!
//! Architecture invariant: every long-lived child (QEMU, mmdebstrap, nbdkit) is started
//! through [`spawn`], which puts it in a process group of its own and asks the kernel to
//! SIGKILL it when the thread that started it dies; [`Group`] kills the whole group on drop,
//! SIGTERM first, SIGKILL after a grace period.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A child in a process group of its own, killed with its group on drop.
#[derive(Debug)]
pub struct Group {
    child: Child,
    pgid: Pid,
    reaped: Option<ExitStatus>,
}

/// Start `cmd` as the leader of a new process group with a parent-death signal.
///
/// The parent-death signal fires when the *thread* that forked dies, so call this from a
/// thread that lives as long as the child should (the main thread, or a dedicated one).
/// It reaches only the leader: for a program that starts children of its own, use
/// [`spawn_tree`].
pub fn spawn(cmd: &mut Command) -> io::Result<Group> {
    spawn_with_signal(cmd, libc::SIGKILL)
}

/// A command that runs `program` (add its arguments to the result) under a small shell
/// that, told of the harness's death with SIGTERM, SIGKILLs its whole process group. Start it
/// with [`spawn_tree`]. For programs that start processes of their own (mmdebstrap runs apt,
/// dpkg, chroot…), so that even when the harness is SIGKILLed nothing of the tree lives on.
pub fn tree(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg("trap 'kill -KILL 0' TERM INT HUP; \"$@\" & wait $!")
        .arg("faultline-tree")
        .arg(program);
    c
}

/// Start a command made by [`tree`].
pub fn spawn_tree(cmd: &mut Command) -> io::Result<Group> {
    spawn_with_signal(cmd, libc::SIGTERM)
}

fn spawn_with_signal(cmd: &mut Command, signal: libc::c_int) -> io::Result<Group> {
    cmd.process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe; nothing here allocates.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pgid = Pid::from_raw(child.id() as i32);
    Ok(Group {
        child,
        pgid,
        reaped: None,
    })
}

/// The deadline passed before the child exited.
#[derive(Debug, thiserror::Error)]
#[error("still running after {0:?}")]
pub struct TimedOut(pub Duration);

impl Group {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Exit status if the leader has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait()?;
        }
        Ok(self.reaped)
    }

    /// Wait for the leader to exit, at most `limit`.
    pub fn wait_for(&mut self, limit: Duration) -> io::Result<Result<ExitStatus, TimedOut>> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Ok(s));
            }
            if start.elapsed() >= limit {
                return Ok(Err(TimedOut(limit)));
            }
            std::thread::sleep(Duration::from_millis(50).min(limit.saturating_sub(start.elapsed())));
        }
    }

    /// SIGKILL the whole group now, without a grace period (what a power cut does to a
    /// disk's server); reap the leader with [`Group::try_wait`]. Idempotent; once the leader
    /// is reaped it does nothing (its group id may belong to someone else by then).
    pub fn kill_now(&self) -> io::Result<()> {
        if self.reaped.is_some() {
            return Ok(());
        }
        match killpg(self.pgid, Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// SIGTERM the group, wait up to `grace`, then SIGKILL it. Idempotent.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = killpg(self.pgid, Signal::SIGTERM);
        if !matches!(self.wait_for(grace), Ok(Ok(_))) {
            let _ = killpg(self.pgid, Signal::SIGKILL);
            let _ = self.wait_for(Duration::from_secs(5));
        }
        // Members other than the leader may remain after it exits; they get no grace.
        let _ = killpg(self.pgid, Signal::SIGKILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

/// The last `n` lines of a child's log (its stderr, console or build log): what a person
/// needs to see why it failed. Empty if the file cannot be read.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid the child printed on its first line.
    fn first_line_pid(g: &mut Group) -> i32 {
        use std::io::Read;
        let mut out = g.child.stdout.take().unwrap();
        let mut line = String::new();
        let mut byte = [0u8];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        line.trim().parse().unwrap()
    }

    #[test]
    fn dropping_a_group_kills_its_members() {
        // The leader starts a grandchild in the same group and then waits on it.
        let mut g = spawn(
            Command::new("sh")
                .args(["-c", "sleep 300 & echo $! ; wait"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let grandchild = first_line_pid(&mut g);
        drop(g);
        std::thread::sleep(Duration::from_millis(100));
        let alive = nix::sys::signal::kill(Pid::from_raw(grandchild), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "grandchild {grandchild} survived");
    }

    #[test]
    fn a_tree_dies_with_its_wrapper() {
        let mut cmd = tree("sh");
        cmd.args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut g = spawn_tree(&mut cmd).unwrap();
        let grandchild = first_line_pid(&mut g);
        // What the kernel does when the harness dies: SIGTERM to the wrapper only.
        nix::sys::signal::kill(Pid::from_raw(g.id() as i32), Signal::SIGTERM).unwrap();
        let _ = g.wait_for(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "grandchild survived: {stat}"
        );
    }

    #[test]
    fn kill_now_kills_at_once() {
        use std::os::unix::process::ExitStatusExt;
        let mut g = spawn(Command::new("sh").args(["-c", "trap '' TERM; sleep 30"])).unwrap();
        g.kill_now().unwrap();
        let status = g.wait_for(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        g.kill_now().unwrap();
    }

    #[test]
    fn waits_have_deadlines() {
        let mut g = spawn(Command::new("sleep").arg("30")).unwrap();
        let start = Instant::now();
        assert!(g.wait_for(Duration::from_millis(200)).unwrap().is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
