//! One QEMU process per guest: started on a throwaway overlay of its image, driven through
//! QMP (the machine) and qemu-guest-agent (inside), its serial console logged from the first
//! byte (at most [`console::CONSOLE_MAX`] of it), and killed with its process group however
//! the harness ends.

pub mod agent;
pub mod argv;
pub mod console;
pub mod link;
pub mod qmp;
pub mod saved;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::procs::{self, tail};
pub use agent::{Agent, ExecOutput};
pub use argv::{MachineSpec, Nic, NicBackend};
pub use qmp::Qmp;

/// A guest failed; carries what a person needs to see why.
#[derive(Debug, thiserror::Error)]
#[error("guest {guest}: {what}\n--- QEMU stderr ---\n{stderr}\n--- console, last lines ---\n{console}")]
pub struct VmError {
    pub guest: String,
    pub what: String,
    pub stderr: String,
    pub console: String,
}

impl VmError {
    /// A guest that fails is a broken lab (README.md: exit 3).
    pub const EXIT_CODE: u8 = crate::exit::Exit::Broken.code();

    /// An error about `guest` with no QEMU files to show (before QEMU runs, or about the lab).
    pub fn new(guest: &str, what: impl Into<String>) -> VmError {
        VmError {
            guest: guest.into(),
            what: what.into(),
            stderr: String::new(),
            console: String::new(),
        }
    }
}

/// What a guest boots: a disk image with the kernel and initrd that start it. Built images
/// provide it; this floor needs nothing else of them. (`Sync`: a start is awaited on a
/// multi-threaded runtime.)
pub trait Bootable: Sync {
    /// The image's name (a saved state is named after it).
    fn name(&self) -> &str;
    /// What identifies the image's contents: equal hashes mean equal files (saved states are
    /// keyed by it).
    fn hash(&self) -> &str;
    fn kernel(&self) -> PathBuf;
    fn initrd(&self) -> PathBuf;
    /// The root disk (qcow2); every start puts a throwaway overlay on it.
    fn root(&self) -> PathBuf;
    /// The kernel command line the image boots with.
    fn cmdline(&self) -> &str;
}

/// What to start.
pub struct Launch<'a> {
    pub name: String,
    pub image: &'a dyn Bootable,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    /// Appended to the image's kernel command line.
    pub extra_cmdline: String,
    pub nics: Vec<Nic>,
    /// Where this guest's overlay, sockets and logs go.
    pub dir: PathBuf,
    /// Start from this saved state (its frozen disk and machine state) instead of booting.
    pub restore: Option<&'a saved::Saved>,
}

pub struct Machine {
    pub name: String,
    pub dir: PathBuf,
    pub accel: Accel,
    pub qmp: Qmp,
    pub agent: Agent,
    pub started: Instant,
    group: procs::Group,
    /// The console's copy into `console.log` (dropped after `group`: QEMU's end ends it, and
    /// its last line is written before the machine is gone).
    _console: console::ConsoleLog,
    /// QMP's and the agent's sockets and the console's FIFO (dropped after `group`: QEMU
    /// goes first).
    _sockets: crate::sockets::SocketDir,
}

impl Machine {
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// Create the overlay, start QEMU and connect to QMP and the agent socket. Does not wait
    /// for the guest to boot: see [`Machine::wait_agent`].
    pub async fn start(l: Launch<'_>) -> Result<Machine, VmError> {
        let fail = |what: String| VmError {
            guest: l.name.clone(),
            what,
            stderr: tail(&l.dir.join("qemu.stderr"), 20),
            console: console_tail(&l.dir.join("console.log")),
        };
        std::fs::create_dir_all(&l.dir).map_err(|e| fail(format!("creating {}: {e}", l.dir.display())))?;
        let disk = l.dir.join("disk.qcow2");
        let backing = l.restore.map_or_else(|| l.image.root(), |s| s.disk());
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&backing)
            .arg(&disk)
            .output()
            .map_err(|e| fail(format!("running qemu-img: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "qemu-img create failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let sockets =
            crate::sockets::private_dir().map_err(|e| fail(format!("creating a socket folder: {e}")))?;
        // The guest decides how much its console prints: QEMU writes it into a FIFO, and the
        // log keeps its first CONSOLE_MAX bytes.
        let console_fifo = sockets.path().join("console.fifo");
        let console =
            console::ConsoleLog::start(&console_fifo, &l.dir.join("console.log"), console::CONSOLE_MAX)
                .map_err(|e| fail(format!("logging the console: {e}")))?;
        let spec = MachineSpec {
            name: l.name.clone(),
            accel: l.accel,
            cpus: l.cpus,
            memory_mib: l.memory_mib,
            kernel: l.image.kernel(),
            initrd: l.image.initrd(),
            cmdline: format!("{} {}", l.image.cmdline(), l.extra_cmdline)
                .trim()
                .to_string(),
            disk,
            qmp_socket: sockets.path().join("qmp.sock"),
            agent_socket: sockets.path().join("agent.sock"),
            console_log: console_fifo,
            nics: l.nics.clone(),
            incoming: l.restore.map(|s| s.state()),
        };
        for s in [&spec.qmp_socket, &spec.agent_socket] {
            let _ = std::fs::remove_file(s);
        }
        let stderr = std::fs::File::create(l.dir.join("qemu.stderr"))
            .map_err(|e| fail(format!("creating qemu.stderr: {e}")))?;
        let args = argv::argv(&spec);
        std::fs::write(l.dir.join("qemu.argv"), args.join("\n") + "\n")
            .map_err(|e| fail(format!("writing qemu.argv: {e}")))?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let started = Instant::now();
        let mut group =
            procs::spawn(&mut cmd).map_err(|e| fail(format!("cannot start qemu-system-x86_64: {e}")))?;

        // The sockets appear once QEMU has parsed its arguments; an early exit is a bad start.
        let deadline = started + Duration::from_secs(10);
        while !spec.qmp_socket.exists() || !spec.agent_socket.exists() {
            if let Ok(Some(status)) = group.try_wait() {
                return Err(fail(format!("QEMU exited at start ({status})")));
            }
            if Instant::now() > deadline {
                return Err(fail("QEMU did not create its sockets within 10 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let qmp = match Qmp::connect(&spec.qmp_socket, Duration::from_secs(10)).await {
            Ok(q) => q,
            // QEMU creates its sockets before it checks everything on its command line, so a
            // refused start often shows first as a dropped QMP connection.
            Err(e) => match group.wait_for(Duration::from_secs(2)) {
                Ok(Ok(status)) => return Err(fail(format!("QEMU exited at start ({status})"))),
                _ => return Err(fail(e.to_string())),
            },
        };
        let agent = Agent::connect(&spec.agent_socket)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Machine {
            name: l.name,
            dir: l.dir,
            accel: l.accel,
            qmp,
            agent,
            started,
            group,
            _console: console,
            _sockets: sockets,
        })
    }

    /// An error about this guest, with its QEMU stderr and console tail attached.
    pub fn error(&self, what: impl Into<String>) -> VmError {
        VmError {
            guest: self.name.clone(),
            what: what.into(),
            stderr: tail(&self.dir.join("qemu.stderr"), 20),
            console: console_tail(&self.console_log()),
        }
    }

    /// Wait for the guest agent to answer, at most `limit`; fails early if QEMU exits.
    /// Returns the time since QEMU was started.
    pub async fn wait_agent(&mut self, limit: Duration) -> Result<Duration, VmError> {
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.group.try_wait() {
                return Err(self.error(format!("QEMU exited while the guest was booting ({status})")));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!("no answer from the guest agent within {limit:?}")));
            }
            match self.agent.wait_ready(left.min(Duration::from_secs(1))).await {
                Ok(_) => return Ok(self.started.elapsed()),
                Err(agent::AgentError::Timeout(_)) => continue,
                Err(e) => return Err(self.error(e.to_string())),
            }
        }
    }

    /// After a start with [`Launch::restore`]: wait until QEMU has loaded the saved state and
    /// the guest runs again. Returns the time since QEMU was started.
    pub async fn wait_restored(&mut self, limit: Duration) -> Result<Duration, VmError> {
        self.wait_loaded(limit, true).await
    }

    /// Wait until QEMU has loaded the saved state; leave the guest paused unless `resume`
    /// (so that several guests can be resumed at one moment with [`Machine::resume`]).
    pub async fn wait_loaded(&mut self, limit: Duration, resume: bool) -> Result<Duration, VmError> {
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.group.try_wait() {
                return Err(self.error(format!("QEMU exited while loading the saved state ({status})")));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!("saved state not loaded within {limit:?}")));
            }
            let s = self
                .qmp
                .execute("query-status", None, left)
                .await
                .map_err(|e| self.error(e.to_string()))?;
            match s["status"].as_str() {
                Some("running") => return Ok(self.started.elapsed()),
                // States are saved from a stopped guest, so a finished load leaves it paused.
                Some("paused") | Some("postmigrate") => {
                    let m = self
                        .qmp
                        .execute("query-migrate", None, left)
                        .await
                        .map_err(|e| self.error(e.to_string()))?;
                    if m["status"].as_str() == Some("completed") {
                        if !resume {
                            return Ok(self.started.elapsed());
                        }
                        self.resume(left).await?;
                    }
                }
                Some("inmigrate") | Some("prelaunch") | Some("restore-vm") => {}
                other => return Err(self.error(format!("unexpected state after restore: {other:?}"))),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Let a paused guest run.
    pub async fn resume(&mut self, limit: Duration) -> Result<(), VmError> {
        match self.qmp.execute("cont", None, limit).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Pause the guest.
    pub async fn pause(&mut self, limit: Duration) -> Result<(), VmError> {
        match self.qmp.execute("stop", None, limit).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Set the guest's clock to the host's without starting a process in it: the agent sets
    /// the system time, then tries `hwclock -w`, which our images don't ship (a process start
    /// costs a second under TCG), so that part's error is expected and ignored.
    pub async fn set_clock(&mut self, limit: Duration) -> Result<(), VmError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        match self
            .agent
            .execute("guest-set-time", serde_json::json!({ "time": now }), limit)
            .await
        {
            Ok(_) => Ok(()),
            Err(agent::AgentError::Command { desc, .. }) if desc.contains("hwclock") => Ok(()),
            Err(e) => Err(self.error(format!("setting the guest clock: {e}"))),
        }
    }

    /// Pause the guest and write its whole machine state to `path`. The guest stays paused;
    /// its disk overlay is the matching frozen disk.
    pub async fn save_state(&mut self, path: &Path, limit: Duration) -> Result<(), VmError> {
        let until = Instant::now() + limit;
        let e = |m: &Machine, err: qmp::QmpError| m.error(err.to_string());
        self.qmp
            .execute("stop", None, limit)
            .await
            .map_err(|err| e(self, err))?;
        let quoted = format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
        let uri = format!("exec:cat > {quoted}");
        self.qmp
            .execute("migrate", Some(serde_json::json!({ "uri": uri })), limit)
            .await
            .map_err(|err| e(self, err))?;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!("saving the machine state took longer than {limit:?}")));
            }
            let m = self
                .qmp
                .execute("query-migrate", None, left)
                .await
                .map_err(|err| e(self, err))?;
            match m["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    return Err(self.error(format!("saving the machine state failed: {m}")));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Run a shell script in the guest.
    pub async fn exec(&mut self, script: &str, limit: Duration) -> Result<ExecOutput, VmError> {
        match self.agent.exec(script, limit).await {
            Ok(o) => Ok(o),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Ask QEMU to quit, then make sure its whole group is gone.
    pub async fn shutdown(mut self) {
        let _ = self.qmp.execute("quit", None, Duration::from_secs(2)).await;
        self.group.terminate(Duration::from_secs(3));
    }
}

/// The console's last lines with terminal escapes taken out.
pub fn console_tail(path: &Path) -> String {
    strip_ansi(&tail(path, 25))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            super::strip_ansi("[\u{1b}[0;32m  OK  \u{1b}[0m] Started x\r"),
            "[  OK  ] Started x"
        );
    }
}
