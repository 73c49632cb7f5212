//! nbdkit's command line for a disk, and QEMU's block node on it: which filters a disk needs
//! for the faults that may act on it and its write cache, in their order, with the run-time
//! control each gives the harness. Pure.
//!
//! The first `--filter` sits nearest the client (QEMU), so a request meets them in this order:
//!
//! 1. `pause` (`pause-control=SOCK`, run time): a stalled controller. While paused, every new
//!    request hangs here, before it can be delayed, failed or cached; `P` is answered once the
//!    requests already past it are done. Flushes are not held (the filter has no flush hook).
//! 2. `delay` (`rdelay=`, `wdelay=`; fixed until nbdkit restarts): a slow controller. nbdkit
//!    1.32 has no run-time switch for it (the `rate` filter's `rate-file` is live, but limits
//!    bandwidth, so its delay grows with the request's size), so a delay is in place from the
//!    disk's start, and a disk has the filter only in the arms whose faults delay it. Nothing is
//!    restarted to turn it on or off.
//! 3. `error` (`error-rate=R`, fixed; `error-file=PATH`, run time): a failing disk. The rate is
//!    fixed when nbdkit starts; the trigger file's existence switches it on and off, since the
//!    filter checks it on every request. Flushes never fail (no flush hook).
//! 4. `cache` (fixed): a volatile write cache. `writeback` (honest): writes stay in the cache
//!    until a flush, which writes them back and flushes the file; a FUA write goes through.
//!    `unsafe` (lying): a flush is acknowledged and does nothing, FUA is stripped. The cache
//!    lives in an unlinked file under `TMPDIR` (the disk's folder), so any exit of nbdkit — a
//!    power cut — loses what was never written back. No `cache-max-size`: in 1.32 the cache
//!    reclaims a block by punching it out of the cache file without writing it back, which
//!    would lose dirty data while the disk is up. So a lying cache persists nothing written
//!    since its nbdkit started.
//!
//! Then the `file` plugin on the disk's sparse image. Without a cache, writes reach the host's
//! page cache before they are acknowledged, so killing nbdkit loses nothing.
//!
//! A power cut kills nbdkit (SIGKILL) and starts it again with the same command line on the
//! same image; QEMU's nbd client holds requests for `reconnect-delay` seconds and replays them
//! once the server is back (0: they fail at once, and the next request reconnects).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::DiskSpec;

/// A disk's volatile write cache, as its firmware keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteCache {
    /// No cache: an acknowledged write is persisted.
    #[default]
    None,
    /// Writes are cached until a flush, which persists them (`cache=writeback`).
    Honest,
    /// A flush is acknowledged and persists nothing (`cache=unsafe`).
    Lying,
}

impl WriteCache {
    pub fn is_none(&self) -> bool {
        *self == WriteCache::None
    }

    /// As a case writes it.
    pub fn parse(text: &str) -> Option<WriteCache> {
        match text {
            "none" => Some(WriteCache::None),
            "honest" => Some(WriteCache::Honest),
            "lying" => Some(WriteCache::Lying),
            _ => None,
        }
    }
}

/// The share of requests the error filter fails while it is armed, in thousandths of a
/// percent (100% = 100 000), written as a case and nbdkit write it: `"5%"`, `"0.5%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorRate(u32);

impl ErrorRate {
    pub const EVERY: ErrorRate = ErrorRate(100_000);

    /// `"N%"` with at most three decimals, more than 0 and at most 100.
    pub fn parse(text: &str) -> Result<ErrorRate, String> {
        let bad = || {
            format!("bad rate {text:?}: a percentage more than 0 and at most 100, e.g. \"5%\" or \"0.5%\"")
        };
        let number = text.strip_suffix('%').ok_or_else(bad)?;
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (number.contains('.') && !digits(frac)) || frac.len() > 3 || whole.len() > 3 {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        let milli = whole * 1000 + frac;
        if milli == 0 || milli > 100_000 {
            return Err(bad());
        }
        Ok(ErrorRate(milli))
    }

    pub fn is_every(&self) -> bool {
        *self == ErrorRate::EVERY
    }
}

impl std::fmt::Display for ErrorRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{whole}.{}%", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for ErrorRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The delay filter's delays (fixed for nbdkit's life): reads; writes, zeroes and trims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delay {
    pub read: Option<Duration>,
    pub write: Option<Duration>,
}

/// Where a disk's files are: its image, nbdkit's log, the sockets and the error trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPaths {
    /// The sparse image the `file` plugin serves (what survives a power cut).
    pub image: PathBuf,
    /// nbdkit's stderr, appended to by every start.
    pub log: PathBuf,
    /// The disk's folder: the write cache's `TMPDIR`.
    pub dir: PathBuf,
    /// nbdkit's NBD socket (`--unix`).
    pub socket: PathBuf,
    /// While this file exists, the error filter fails requests.
    pub trigger: PathBuf,
    /// The pause filter's control socket.
    pub pause: PathBuf,
}

impl DiskPaths {
    /// The image and log in `dir` (the arm's `disks/`), sockets and trigger in `sockets` (a
    /// short private folder: a socket path must fit `sun_path`).
    pub fn new(name: &str, dir: &Path, sockets: &Path) -> DiskPaths {
        DiskPaths {
            image: dir.join(format!("{name}.img")),
            log: dir.join(format!("{name}.nbdkit.log")),
            dir: dir.to_path_buf(),
            socket: sockets.join(format!("nbd-{name}.sock")),
            trigger: sockets.join(format!("nbd-{name}.error")),
            pause: sockets.join(format!("nbd-{name}.pause")),
        }
    }
}

/// The filters of a disk, nearest the client first.
pub fn filters(spec: &DiskSpec) -> Vec<&'static str> {
    let mut f = Vec::new();
    if spec.pause {
        f.push("pause");
    }
    if spec.delay.is_some() {
        f.push("delay");
    }
    if spec.error_rate.is_some() {
        f.push("error");
    }
    if !spec.write_cache.is_none() {
        f.push("cache");
    }
    f
}

/// nbdkit's command line for a disk: the `file` plugin on its image behind [`filters`], each
/// filter's parameters in the same order.
pub fn argv(spec: &DiskSpec, paths: &DiskPaths) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--foreground".into(),
        "--exit-with-parent".into(),
        "--unix".into(),
        paths.socket.display().to_string(),
    ];
    for f in filters(spec) {
        a.push(format!("--filter={f}"));
    }
    a.push("file".into());
    a.push(format!("file={}", paths.image.display()));
    if spec.pause {
        a.push(format!("pause-control={}", paths.pause.display()));
    }
    if let Some(d) = &spec.delay {
        if let Some(r) = d.read {
            a.push(format!("rdelay={}ms", r.as_millis()));
        }
        if let Some(w) = d.write {
            a.push(format!("wdelay={}ms", w.as_millis()));
        }
    }
    if let Some(rate) = spec.error_rate {
        a.push("error=EIO".into());
        a.push(format!("error-rate={rate}"));
        a.push(format!("error-file={}", paths.trigger.display()));
    }
    match spec.write_cache {
        WriteCache::None => {}
        WriteCache::Honest => a.push("cache=writeback".into()),
        WriteCache::Lying => a.push("cache=unsafe".into()),
    }
    a
}

/// The QMP commands that add a disk to its guest: a block node on nbdkit's socket (holding
/// requests `reconnect_delay_s` seconds when the server goes away), then a virtio disk on it
/// whose serial is the disk's name. Errors are reported to the guest, never a paused VM.
pub fn hotplug_commands(spec: &DiskSpec, socket: &Path) -> [(&'static str, Value); 2] {
    let mut node = json!({
        "driver": "nbd",
        "node-name": spec.node_name(),
        "server": {"type": "unix", "path": socket.display().to_string()},
    });
    if spec.reconnect_delay_s > 0 {
        node["reconnect-delay"] = json!(spec.reconnect_delay_s);
    }
    [
        ("blockdev-add", node),
        (
            "device_add",
            json!({
                "driver": "virtio-blk-pci",
                "id": spec.device_id(),
                "drive": spec.node_name(),
                "serial": spec.name,
                "werror": "report",
                "rerror": "report",
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DiskSpec {
        DiskSpec {
            name: "shelf".into(),
            guest: "filer".into(),
            size_bytes: 256 << 20,
            error_rate: None,
            delay: None,
            pause: false,
            write_cache: WriteCache::None,
            reconnect_delay_s: 0,
        }
    }

    fn paths(name: &str) -> DiskPaths {
        DiskPaths::new(name, Path::new("/r/disks"), Path::new("/tmp/s"))
    }

    #[test]
    fn an_error_disk_is_served_as_before() {
        let s = DiskSpec {
            error_rate: Some(ErrorRate::EVERY),
            ..spec()
        };
        assert_eq!(
            argv(&s, &paths("shelf")).join(" "),
            "--foreground --exit-with-parent --unix /tmp/s/nbd-shelf.sock --filter=error file \
             file=/r/disks/shelf.img error=EIO error-rate=100% error-file=/tmp/s/nbd-shelf.error"
        );
        let plain = argv(&spec(), &paths("shelf"));
        assert!(!plain.iter().any(|x| x.contains("filter")), "{plain:?}");
    }

    #[test]
    fn every_filter_in_its_order() {
        let s = DiskSpec {
            name: "a1".into(),
            error_rate: Some(ErrorRate::parse("0.5%").unwrap()),
            delay: Some(Delay {
                read: Some(Duration::from_millis(200)),
                write: Some(Duration::from_secs(1)),
            }),
            pause: true,
            write_cache: WriteCache::Lying,
            reconnect_delay_s: 10,
            ..spec()
        };
        insta::assert_snapshot!("every_filter", argv(&s, &paths("a1")).join("\n"));
        let honest_write_delay = DiskSpec {
            delay: Some(Delay {
                read: None,
                write: Some(Duration::from_millis(50)),
            }),
            write_cache: WriteCache::Honest,
            ..spec()
        };
        insta::assert_snapshot!(
            "write_delay_honest_cache",
            argv(&honest_write_delay, &paths("shelf")).join("\n")
        );
    }

    #[test]
    fn hotplug_holds_requests_only_when_asked() {
        let [(add, node), (dev, device)] = hotplug_commands(&spec(), Path::new("/tmp/s/nbd-shelf.sock"));
        assert_eq!((add, dev), ("blockdev-add", "device_add"));
        assert_eq!(
            node,
            json!({"driver": "nbd", "node-name": "nbd-shelf",
                   "server": {"type": "unix", "path": "/tmp/s/nbd-shelf.sock"}})
        );
        assert_eq!(device["serial"], "shelf");
        assert_eq!(device["werror"], "report");
        let held = DiskSpec {
            reconnect_delay_s: 10,
            ..spec()
        };
        let [(_, node), _] = hotplug_commands(&held, Path::new("/s"));
        assert_eq!(node["reconnect-delay"], 10);
    }

    #[test]
    fn error_rates_read_and_print_as_written() {
        for (text, shown) in [
            ("5%", "5%"),
            ("100%", "100%"),
            ("0.5%", "0.5%"),
            ("0.125%", "0.125%"),
            ("2.50%", "2.5%"),
            ("0.001%", "0.001%"),
        ] {
            assert_eq!(
                ErrorRate::parse(text).map(|r| r.to_string()),
                Ok(shown.to_string())
            );
        }
        for bad in [
            "0%", "0.0%", "101%", "5", "5 %", "-1%", ".5%", "5.%", "0.0001%", "1e2%", "",
        ] {
            assert!(ErrorRate::parse(bad).is_err(), "{bad}");
        }
        assert!(ErrorRate::parse("100%").unwrap().is_every());
    }

    #[test]
    fn write_caches_as_written() {
        assert_eq!(WriteCache::parse("lying"), Some(WriteCache::Lying));
        assert_eq!(WriteCache::parse("honest"), Some(WriteCache::Honest));
        assert_eq!(WriteCache::parse("none"), Some(WriteCache::None));
        assert_eq!(WriteCache::parse("writeback"), None);
    }
}
