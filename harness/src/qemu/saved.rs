//! Saved machine states: each image booted once to ready and its whole machine state written
//! to a file, so later starts take a fraction of a second instead of a systemd boot.
//!
//! Layout under the cache root: `states/<image>-<key>/{disk.qcow2, state, meta.json}`.
//! `disk.qcow2` is the frozen overlay (backed by the image's root.qcow2) that matches `state`;
//! every start puts a fresh overlay on top of it. The key covers the image's recipe hash,
//! QEMU's version, the accelerator, the machine size and the shape of the QEMU command line,
//! so any of those changing makes a new state.
//!
//! Architecture invariant: `states/` is a [`Store`]: an entry folder exists only when
//! complete, and concurrent runs wait for one save of each state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accel::Accel;
use crate::qemu::{argv, Bootable, Launch, Machine, MachineSpec, Nic, NicBackend, VmError};
use crate::store::Store;

/// Machine size every saved state (and so every lab guest) has.
/// One vCPU: a lab is three or more guests on a two-core host under TCG, and more vCPU
/// threads than host cores only adds contention.
pub const CPUS: u32 = 1;
pub const MEMORY_MIB: u32 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedMeta {
    pub image: String,
    pub image_hash: String,
    pub key: String,
    pub accel: Accel,
    pub qemu_version: String,
    pub boot_s: f64,
    pub save_s: f64,
    pub state_bytes: u64,
    pub saved_at: String,
}

#[derive(Debug, Clone)]
pub struct Saved {
    pub dir: PathBuf,
    pub meta: SavedMeta,
}

impl Saved {
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// The one NIC every lab guest has; its backend may differ between save and restore (the
/// backend is not part of the machine state), the device may not.
pub fn lab_nic(backend: NicBackend) -> Nic {
    Nic {
        mac: argv::mac(0, 0),
        backend,
    }
}

/// QEMU's version line, asked once per process.
pub fn qemu_version() -> String {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    })
    .clone()
}

/// The key of the saved state for `image` under `accel`.
pub fn key(image: &dyn Bootable, accel: Accel) -> String {
    // The command line's shape: everything but paths, from a spec with fixed placeholders.
    let shape = argv::argv(&MachineSpec {
        name: "guest".into(),
        accel,
        cpus: CPUS,
        memory_mib: MEMORY_MIB,
        kernel: "/k".into(),
        initrd: "/i".into(),
        cmdline: image.cmdline().to_string(),
        disk: "/d".into(),
        qmp_socket: "/q".into(),
        agent_socket: "/a".into(),
        console_log: "/c".into(),
        nics: vec![lab_nic(NicBackend::Unplugged)],
        incoming: None,
    });
    let mut h = Sha256::new();
    for part in [image.hash(), &qemu_version(), &shape.join("\u{1}")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Where saved states live under the cache root.
fn store(cache_root: &Path) -> Store {
    Store::new(cache_root.join("states"))
}

/// The folder name of `image`'s saved state under `accel` in `states/`.
pub fn entry(image: &dyn Bootable, accel: Accel) -> String {
    format!("{}-{}", image.name(), key(image, accel))
}

/// The saved state for `image`, if there is one.
pub fn lookup(cache_root: &Path, image: &dyn Bootable, accel: Accel) -> Option<Saved> {
    let dir = store(cache_root).entry(&entry(image, accel));
    let meta = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    Some(Saved {
        meta: serde_json::from_str(&meta).ok()?,
        dir,
    })
}

/// The saved state for `image`, booting and saving it first if there is none.
pub async fn ensure(
    cache_root: &Path,
    image: &dyn Bootable,
    accel: Accel,
    say: &mut dyn FnMut(&str),
) -> Result<Saved, VmError> {
    if let Some(s) = lookup(cache_root, image, accel) {
        return Ok(s);
    }
    let states = store(cache_root);
    let name = entry(image, accel);
    let fail = |what: String| VmError::new(image.name(), what);
    let lock = states
        .lock(&name)
        .map_err(|e| fail(format!("locking {name}: {e}")))?;
    if let Some(s) = lookup(cache_root, image, accel) {
        return Ok(s);
    }
    let work = lock.work().map_err(|e| fail(format!("preparing {name}: {e}")))?;
    say(&format!(
        "saving a ready state of {} (one cold boot)",
        image.name()
    ));
    let started = Instant::now();
    let mut vm = Machine::start(Launch {
        name: image.name().to_string(),
        image,
        accel,
        cpus: CPUS,
        memory_mib: MEMORY_MIB,
        extra_cmdline: String::new(),
        nics: vec![lab_nic(NicBackend::Unplugged)],
        dir: work.path().to_path_buf(),
        restore: None,
    })
    .await?;
    let scale = |s: u64| accel.scale(Duration::from_secs(s));
    vm.wait_agent(scale(50)).await?;
    let state = vm.exec("systemctl is-system-running --wait", scale(30)).await?;
    if state.stdout.trim() != "running" {
        let failed = vm
            .exec("systemctl --failed --no-legend --plain", scale(5))
            .await?;
        let err = vm.error(format!(
            "not saving a guest whose system is {:?}: {}",
            state.stdout.trim(),
            failed.stdout.trim()
        ));
        vm.shutdown().await;
        return Err(err);
    }
    // Saved without an address or link: every restore is a clone that gets its own name,
    // address and MAC, and must not announce the saved guest's identity meanwhile.
    vm.exec(
        "ip link set eth0 down && ip addr flush dev eth0 && sync",
        scale(10),
    )
    .await?;
    let boot = started.elapsed();
    let t = Instant::now();
    let state_tmp = work.path().join("state.tmp");
    let saved = vm.save_state(&state_tmp, scale(20)).await;
    vm.shutdown().await;
    saved?;
    let save = t.elapsed();

    let out = work.path().join("out");
    let io = |e: std::io::Error| fail(format!("writing the saved state: {e}"));
    std::fs::create_dir_all(&out).map_err(io)?;
    std::fs::rename(work.path().join("disk.qcow2"), out.join("disk.qcow2")).map_err(io)?;
    std::fs::rename(&state_tmp, out.join("state")).map_err(io)?;
    let meta = SavedMeta {
        image: image.name().to_string(),
        image_hash: image.hash().to_string(),
        key: key(image, accel),
        accel,
        qemu_version: qemu_version(),
        boot_s: round2(boot),
        save_s: round2(save),
        state_bytes: std::fs::metadata(out.join("state")).map_err(io)?.len(),
        saved_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    std::fs::write(
        out.join("meta.json"),
        serde_json::to_string_pretty(&meta).expect("serializes"),
    )
    .map_err(io)?;
    let dest = work.publish("out").map_err(io)?;
    say(&format!(
        "saved {} in {:.1} s (boot {:.1} s, save {:.1} s)",
        image.name(),
        started.elapsed().as_secs_f64(),
        meta.boot_s,
        meta.save_s
    ));
    Ok(Saved { dir: dest, meta })
}

fn round2(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}
