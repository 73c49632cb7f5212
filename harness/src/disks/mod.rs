//! Extra disks served by nbdkit, hot-plugged into a running guest, and the faults the harness
//! drives on them.
//!
//! A disk is a sparse file behind `nbdkit file`, with its filters in front ([`nbdkit`]: which
//! ones, in which order, with which run-time controls); the guest sees a virtio disk whose
//! serial is the disk's name (`/dev/disk/by-id/virtio-<name>`). Disks are added to guests
//! restored from saved state (QMP `blockdev-add` + `device_add`), so the saved machine states,
//! made without them, stay valid for every case.
//!
//! At run time: the error filter is armed by creating its trigger file and disarmed by
//! removing it ([`Disk::set_failing`]); the pause filter is told over its control socket
//! ([`Disk::pause`], [`pause`]); a power cut SIGKILLs nbdkit ([`Disk::power_off`]) and serves
//! the image again with the same command line ([`Disk::power_on`]). Proof comes from QEMU's
//! counts ([`blockstats`]).
//!
//! Architecture invariant: nbdkit is started through [`crate::procs::spawn`] (and with
//! `--exit-with-parent`), every time, so it cannot outlive the harness; [`nbdkit::argv`] is
//! pure.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::procs;

pub mod blockstats;
pub mod nbdkit;
pub mod pause;

pub use blockstats::BlockStats;
pub use nbdkit::{Delay, DiskPaths, ErrorRate, WriteCache};

/// The filters a case may list in `nbdkit_filters` (the runner drives them). The others a
/// disk gets come from the faults that act on it and its write cache.
pub const DRIVEN_FILTERS: [&str; 1] = ["error"];

/// What a virtio-blk serial holds: a disk's name must fit.
pub const SERIAL_MAX: usize = 20;

/// How long nbdkit may take to listen once started.
const LISTEN_LIMIT: Duration = Duration::from_secs(10);

/// One disk as the lab serves it in one arm: what nbdkit puts in front of its image, and how
/// long QEMU holds requests when the server goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub name: String,
    pub guest: String,
    pub size_bytes: u64,
    /// The error filter and the share of requests it fails while armed; `None`: no filter.
    pub error_rate: Option<ErrorRate>,
    /// The delay filter, fixed for nbdkit's life; `None`: no filter.
    pub delay: Option<Delay>,
    /// The pause filter, driven over its control socket.
    pub pause: bool,
    pub write_cache: WriteCache,
    /// QEMU's nbd `reconnect-delay`: seconds requests wait for a server that went away, then
    /// replayed; 0 fails them at once.
    pub reconnect_delay_s: u32,
}

impl DiskSpec {
    /// A disk with no filter.
    pub fn plain(name: &str, guest: &str, size_bytes: u64) -> DiskSpec {
        DiskSpec {
            name: name.into(),
            guest: guest.into(),
            size_bytes,
            error_rate: None,
            delay: None,
            pause: false,
            write_cache: WriteCache::None,
            reconnect_delay_s: 0,
        }
    }

    /// The QMP id of the guest device and of its block node.
    pub fn device_id(&self) -> String {
        format!("disk-{}", self.name)
    }

    pub fn node_name(&self) -> String {
        format!("nbd-{}", self.name)
    }

    /// Where the guest finds it.
    pub fn guest_path(&self) -> String {
        format!("/dev/disk/by-id/virtio-{}", self.name)
    }
}

/// A disk being served: nbdkit running (or cut off), its files.
#[derive(Debug)]
pub struct Disk {
    pub spec: DiskSpec,
    pub paths: DiskPaths,
    argv: Vec<String>,
    /// nbdkit, `None` while a power cut has it down; stopped when the disk is dropped.
    nbdkit: tokio::sync::Mutex<Option<procs::Group>>,
}

impl Disk {
    /// Start nbdkit for `spec`: the image in `dir` (sparse, of the disk's size), the sockets in
    /// `sockets`. Returns once nbdkit listens, or with why not (its stderr).
    pub async fn serve(spec: &DiskSpec, dir: &Path, sockets: &Path) -> Result<Disk, String> {
        crate::hosttools::find(crate::hosttools::NBDKIT).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let paths = DiskPaths::new(&spec.name, dir, sockets);
        let f = std::fs::File::create(&paths.image)
            .map_err(|e| format!("creating {}: {e}", paths.image.display()))?;
        f.set_len(spec.size_bytes)
            .map_err(|e| format!("sizing {}: {e}", paths.image.display()))?;
        let _ = std::fs::remove_file(&paths.trigger);
        let argv = nbdkit::argv(spec, &paths);
        // What this arm's disk was served with, for whoever reads the results.
        let listed = dir.join(format!("{}.nbdkit.argv", spec.name));
        std::fs::write(&listed, argv.join("\n") + "\n")
            .map_err(|e| format!("writing {}: {e}", listed.display()))?;
        let group = start(&argv, &paths).await?;
        Ok(Disk {
            spec: spec.clone(),
            paths,
            argv,
            nbdkit: tokio::sync::Mutex::new(Some(group)),
        })
    }

    /// The QMP commands that add the disk to its guest ([`nbdkit::hotplug_commands`]).
    pub fn hotplug_commands(&self) -> [(&'static str, Value); 2] {
        nbdkit::hotplug_commands(&self.spec, &self.paths.socket)
    }

    /// Turn the error filter on (its share of requests fails) or off.
    pub fn set_failing(&self, on: bool) -> std::io::Result<()> {
        if on {
            std::fs::write(&self.paths.trigger, b"")
        } else {
            match std::fs::remove_file(&self.paths.trigger) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
    }

    /// Pause (new requests hang) or resume the disk through its pause filter, waiting at most
    /// `limit` for the acknowledgement.
    pub async fn pause(&self, command: pause::Command, limit: Duration) -> Result<(), String> {
        if !self.spec.pause {
            return Err(format!("disk {} has no pause filter", self.spec.name));
        }
        pause::send(&self.paths.pause, command, limit).await
    }

    /// Cut the disk's power: SIGKILL nbdkit now, then reap it (at most `limit`). Returns the
    /// pid that was killed. What its write cache held is gone with it.
    pub async fn power_off(&self, limit: Duration) -> Result<u32, String> {
        let mut slot = self.nbdkit.lock().await;
        let Some(group) = slot.as_mut() else {
            return Err(format!("disk {}'s nbdkit is already down", self.spec.name));
        };
        let pid = group.id();
        group
            .kill_now()
            .map_err(|e| format!("killing nbdkit (pid {pid}): {e}"))?;
        let deadline = Instant::now() + limit;
        loop {
            match group.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
                Ok(None) => return Err(format!("nbdkit (pid {pid}) still ran {limit:?} after SIGKILL")),
                Err(e) => return Err(format!("reaping nbdkit (pid {pid}): {e}")),
            }
        }
        *slot = None;
        Ok(pid)
    }

    /// Power the disk on again after [`Disk::power_off`]: nbdkit started with the same command
    /// line on the same image (so it serves what was persisted), once the stale socket is
    /// removed (nbdkit 1.32 never unlinks it, and would fail to bind). Returns the new pid.
    pub async fn power_on(&self) -> Result<u32, String> {
        let mut slot = self.nbdkit.lock().await;
        if let Some(g) = slot.as_ref() {
            return Err(format!(
                "disk {}'s nbdkit is running (pid {})",
                self.spec.name,
                g.id()
            ));
        }
        match std::fs::remove_file(&self.paths.socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("removing {}: {e}", self.paths.socket.display()))
            }
            _ => {}
        }
        let group = start(&self.argv, &self.paths).await?;
        let pid = group.id();
        *slot = Some(group);
        Ok(pid)
    }

    /// nbdkit's pid, `None` while the disk is powered off.
    pub async fn pid(&self) -> Option<u32> {
        self.nbdkit.lock().await.as_ref().map(procs::Group::id)
    }
}

/// Start nbdkit with `argv` (its stderr appended to the disk's log, its write cache under
/// the disk's folder) and wait until it listens on the disk's socket.
async fn start(argv: &[String], paths: &DiskPaths) -> Result<procs::Group, String> {
    let log = &paths.log;
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    let logged = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) as usize;
    let mut cmd = Command::new("nbdkit");
    cmd.args(argv)
        .env("TMPDIR", &paths.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut group = procs::spawn(&mut cmd).map_err(|e| format!("starting nbdkit: {e}"))?;
    let deadline = Instant::now() + LISTEN_LIMIT;
    // What this start said (the log holds earlier starts too).
    let said = || {
        let text = std::fs::read(log).unwrap_or_default();
        String::from_utf8_lossy(text.get(logged..).unwrap_or_default())
            .trim()
            .to_string()
    };
    while !paths.socket.exists() {
        if let Ok(Some(status)) = group.try_wait() {
            return Err(format!("nbdkit exited at start ({status}): {}", said()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nbdkit did not listen within {} s: {}",
                LISTEN_LIMIT.as_secs(),
                said()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(group)
}

/// Failed reads, writes and flushes of `device` in a `query-blockstats` answer.
pub fn failed_requests(blockstats: &Value, device: &str) -> Option<u64> {
    BlockStats::of(blockstats, device).map(|s| s.failed())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failed_requests_are_summed_for_the_device() {
        let stats = serde_json::json!([
            {"device": "", "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
             "stats": {"failed_rd_operations": 9, "failed_wr_operations": 9, "failed_flush_operations": 0}},
            {"device": "", "qdev": "/machine/peripheral/disk-shelf/virtio-backend",
             "stats": {"failed_rd_operations": 2, "failed_wr_operations": 5, "failed_flush_operations": 1}}
        ]);
        assert_eq!(failed_requests(&stats, "disk-shelf"), Some(8));
        assert_eq!(failed_requests(&stats, "disk-other"), None);
        assert_eq!(
            failed_requests(&serde_json::json!({"no": "array"}), "disk-shelf"),
            None
        );
    }

    /// The run-time controls against a real nbdkit with every filter (no QEMU): the pause
    /// filter answers, the error trigger comes and goes, and a power cut kills nbdkit and
    /// serves the disk again from a new process on the same socket. Skipped without nbdkit.
    #[test]
    fn a_disk_pauses_and_comes_back_after_a_power_cut() {
        if crate::hosttools::find(crate::hosttools::NBDKIT).is_err() {
            eprintln!("nbdkit is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let spec = DiskSpec {
                error_rate: Some(ErrorRate::EVERY),
                delay: Some(Delay {
                    read: Some(Duration::from_millis(1)),
                    write: None,
                }),
                pause: true,
                write_cache: WriteCache::Lying,
                ..DiskSpec::plain("t1", "filer", 1 << 20)
            };
            let limit = Duration::from_secs(10);
            let disk = Disk::serve(&spec, &dir.path().join("disks"), dir.path())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let ok = |what: &str, r: Result<(), String>| r.unwrap_or_else(|e| panic!("{what}: {e}"));
            ok("pause", disk.pause(pause::Command::Pause, limit).await);
            ok("resume", disk.pause(pause::Command::Resume, limit).await);
            disk.set_failing(true).unwrap();
            assert!(disk.paths.trigger.exists());
            disk.set_failing(false).unwrap();
            disk.set_failing(false).unwrap();
            assert!(!disk.paths.trigger.exists());

            let first = disk.pid().await.unwrap();
            assert_eq!(disk.power_off(limit).await, Ok(first));
            assert_eq!(disk.pid().await, None);
            assert!(disk.power_off(limit).await.is_err(), "already down");
            assert!(disk.paths.socket.exists(), "nbdkit 1.32 leaves its socket behind");
            let second = disk.power_on().await.unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(first, second);
            assert!(disk.power_on().await.is_err(), "already up");
            ok(
                "pause after the restart",
                disk.pause(pause::Command::Pause, limit).await,
            );
            ok(
                "resume after the restart",
                disk.pause(pause::Command::Resume, limit).await,
            );
            let argv = std::fs::read_to_string(dir.path().join("disks/t1.nbdkit.argv")).unwrap();
            assert!(argv.contains("--filter=pause\n--filter=delay\n--filter=error\n--filter=cache\n"));
            let log = std::fs::read_to_string(&disk.paths.log).unwrap();
            assert!(!log.contains("error"), "nbdkit said: {log}");
        });
    }
}
