//! Extra disks served by nbdkit, hot-plugged into a running guest.
//!
//! A disk is a sparse file behind `nbdkit file`, with its filters in front; the guest sees a
//! virtio disk whose serial is the disk's name (`/dev/disk/by-id/virtio-<name>`). Disks are
//! added to guests restored from saved state (QMP `blockdev-add` + `device_add`), so the saved
//! machine states, made without them, stay valid for every case.
//!
//! The `error` filter runs with `error-file=`: while that host file exists every request to
//! the disk fails with EIO, so a `disk_error` fault is turned on and off by creating and
//! removing it. Its proof is QEMU's count of failed requests on the device
//! (`query-blockstats`), read before and after.
//!
//! Architecture invariant: nbdkit is started through [`crate::procs::spawn`] (and with
//! `--exit-with-parent`), so it cannot outlive the harness; [`nbdkit_argv`] is pure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs;

/// The filters the runner knows how to drive.
pub const DRIVEN_FILTERS: [&str; 1] = ["error"];

/// What a virtio-blk serial holds: a disk's name must fit.
pub const SERIAL_MAX: usize = 20;

/// One disk as the lab serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub name: String,
    pub guest: String,
    pub size_bytes: u64,
    pub filters: Vec<String>,
}

impl DiskSpec {
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

/// nbdkit's command line for a disk: `file` plugin on `image`, filters in the case's order,
/// the error filter armed by `trigger`'s existence.
pub fn nbdkit_argv(spec: &DiskSpec, socket: &Path, image: &Path, trigger: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--foreground".into(),
        "--exit-with-parent".into(),
        "--unix".into(),
        socket.display().to_string(),
    ];
    for f in &spec.filters {
        a.push(format!("--filter={f}"));
    }
    a.push("file".into());
    a.push(format!("file={}", image.display()));
    if spec.filters.iter().any(|f| f == "error") {
        a.push("error=EIO".into());
        a.push("error-rate=100%".into());
        a.push(format!("error-file={}", trigger.display()));
    }
    a
}

/// A disk being served: nbdkit running, its file, its trigger.
#[derive(Debug)]
pub struct Disk {
    pub spec: DiskSpec,
    pub socket: PathBuf,
    pub image: PathBuf,
    /// While this file exists, every request fails (the error filter).
    pub trigger: PathBuf,
    /// nbdkit; stopped when the disk is dropped.
    _group: procs::Group,
}

impl Disk {
    /// Start nbdkit for `spec`: the image in `dir` (sparse, of the disk's size), the socket in
    /// `sockets`. Returns once nbdkit listens, or with why not (its stderr).
    pub async fn serve(spec: &DiskSpec, dir: &Path, sockets: &Path) -> Result<Disk, String> {
        crate::hosttools::find(crate::hosttools::NBDKIT).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let image = dir.join(format!("{}.img", spec.name));
        let f = std::fs::File::create(&image).map_err(|e| format!("creating {}: {e}", image.display()))?;
        f.set_len(spec.size_bytes)
            .map_err(|e| format!("sizing {}: {e}", image.display()))?;
        let socket = sockets.join(format!("nbd-{}.sock", spec.name));
        let trigger = sockets.join(format!("nbd-{}.error", spec.name));
        let _ = std::fs::remove_file(&trigger);
        let log = dir.join(format!("{}.nbdkit.log", spec.name));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut cmd = Command::new("nbdkit");
        cmd.args(nbdkit_argv(spec, &socket, &image, &trigger))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut group = procs::spawn(&mut cmd).map_err(|e| format!("starting nbdkit: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            let said = || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            if let Ok(Some(status)) = group.try_wait() {
                return Err(format!("nbdkit exited at start ({status}): {}", said()));
            }
            if Instant::now() > deadline {
                return Err(format!("nbdkit did not listen within 10 s: {}", said()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Disk {
            spec: spec.clone(),
            socket,
            image,
            trigger,
            _group: group,
        })
    }

    /// The QMP commands that add the disk to its guest: a block node on nbdkit's socket, then
    /// a virtio disk on it. Errors are reported to the guest, never a paused VM.
    pub fn hotplug_commands(&self) -> [(&'static str, Value); 2] {
        [
            (
                "blockdev-add",
                json!({
                    "driver": "nbd",
                    "node-name": self.spec.node_name(),
                    "server": {"type": "unix", "path": self.socket.display().to_string()},
                }),
            ),
            (
                "device_add",
                json!({
                    "driver": "virtio-blk-pci",
                    "id": self.spec.device_id(),
                    "drive": self.spec.node_name(),
                    "serial": self.spec.name,
                    "werror": "report",
                    "rerror": "report",
                }),
            ),
        ]
    }

    /// Turn the error filter on (every request fails) or off.
    pub fn set_failing(&self, on: bool) -> std::io::Result<()> {
        if on {
            std::fs::write(&self.trigger, b"")
        } else {
            match std::fs::remove_file(&self.trigger) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
    }
}

/// Failed reads, writes and flushes of `device` in a `query-blockstats` answer.
pub fn failed_requests(blockstats: &Value, device: &str) -> Option<u64> {
    let entry = blockstats.as_array()?.iter().find(|e| {
        e["device"].as_str() == Some(device)
            || e["qdev"].as_str().is_some_and(|q| {
                q.trim_end_matches("/virtio-backend")
                    .ends_with(&format!("/{device}"))
            })
    })?;
    let s = &entry["stats"];
    Some(
        [
            "failed_rd_operations",
            "failed_wr_operations",
            "failed_flush_operations",
        ]
        .iter()
        .map(|k| s[*k].as_u64().unwrap_or(0))
        .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf() -> DiskSpec {
        DiskSpec {
            name: "shelf".into(),
            guest: "filer".into(),
            size_bytes: 256 << 20,
            filters: vec!["error".into()],
        }
    }

    #[test]
    fn nbdkit_command_line() {
        let a = nbdkit_argv(
            &shelf(),
            Path::new("/tmp/s/nbd-shelf.sock"),
            Path::new("/r/disks/shelf.img"),
            Path::new("/tmp/s/nbd-shelf.error"),
        );
        assert_eq!(
            a.join(" "),
            "--foreground --exit-with-parent --unix /tmp/s/nbd-shelf.sock --filter=error file \
             file=/r/disks/shelf.img error=EIO error-rate=100% error-file=/tmp/s/nbd-shelf.error"
        );
        let plain = DiskSpec {
            filters: vec![],
            ..shelf()
        };
        let a = nbdkit_argv(&plain, Path::new("/s"), Path::new("/i"), Path::new("/t"));
        assert!(!a.iter().any(|x| x.starts_with("error")), "{a:?}");
    }

    #[test]
    fn failed_requests_are_summed_for_the_device() {
        let stats = json!([
            {"device": "", "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
             "stats": {"failed_rd_operations": 9, "failed_wr_operations": 9, "failed_flush_operations": 0}},
            {"device": "", "qdev": "/machine/peripheral/disk-shelf/virtio-backend",
             "stats": {"failed_rd_operations": 2, "failed_wr_operations": 5, "failed_flush_operations": 1}}
        ]);
        assert_eq!(failed_requests(&stats, "disk-shelf"), Some(8));
        assert_eq!(failed_requests(&stats, "disk-other"), None);
        assert_eq!(failed_requests(&json!({"no": "array"}), "disk-shelf"), None);
    }
}
