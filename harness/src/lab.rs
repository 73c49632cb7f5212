//! A running lab: guests restored from saved states, wired through one switch segment, each
//! given its lab name and address.
//!
//! Architecture invariant: the lab owns every process it starts (QEMU through
//! [`crate::qemu::Machine`]); dropping a `Lab` kills them all, and [`Lab::stop`] also flushes
//! the segment's pcapng and returns the switch's final counts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::accel::Accel;
use crate::disks::{Disk, DiskSpec};
use crate::images::Image;
use crate::qemu::{link, saved, Launch, Machine, NicBackend, VmError};
use crate::store::{Hold, Store, Work};
use crate::wire::switch::{Listen, PortAddr, SegmentConfig, SegmentStats, Switch};

pub struct GuestSpec {
    /// The guest's lab name (an entry of the images' /etc/hosts).
    pub name: String,
    pub image: Image,
}

pub struct LabSpec {
    pub segment: String,
    pub guests: Vec<GuestSpec>,
    pub accel: Accel,
    /// Where guests' files, the sockets and the pcapng go.
    pub dir: PathBuf,
    pub cache_root: PathBuf,
}

/// How long each guest took to come up.
#[derive(Debug, Clone, Serialize)]
pub struct StartTiming {
    pub guest: String,
    /// QEMU start to the saved state loaded and running.
    pub restored_s: f64,
    /// QEMU start to the guest answering with its new name and address set.
    pub ready_s: f64,
}

pub struct Lab {
    pub dir: PathBuf,
    pub accel: Accel,
    pub switch: Switch,
    pub guests: Vec<Machine>,
    pub timings: Vec<StartTiming>,
    /// `faultline run` start (or whoever created the lab) to every guest ready.
    pub ready_s: f64,
    /// Extra disks served by nbdkit ([`Lab::add_disks`]); after the guests, so QEMU lets go of
    /// them first.
    pub disks: Vec<Disk>,
    /// The switch's port sockets (and a kept lab's shell socket): short paths, see
    /// [`crate::sockets`]. Declared late: it goes after the guests and the switch.
    sockets: crate::sockets::SocketDir,
    /// The cache entries the guests run on (images, saved states, the lab state), held so
    /// they are not pruned under them. Declared last: let go once the guests are gone.
    _holds: Vec<Hold>,
}

impl Lab {
    /// A private folder with a short path for sockets that serve this lab (`faultline shell`).
    pub fn socket_dir(&self) -> &Path {
        self.sockets.path()
    }

    /// Make sure each image has a saved state, start the switch, restore every guest on it,
    /// and rename each one. `say` gets progress lines.
    pub async fn start(spec: LabSpec, say: &mut dyn FnMut(&str)) -> Result<Lab, VmError> {
        let t0 = Instant::now();
        let mut states = Vec::new();
        for g in &spec.guests {
            states.push(saved::ensure(&spec.cache_root, &g.image, spec.accel, say).await?);
        }
        let holds = hold_all(
            spec.guests
                .iter()
                .map(|g| &g.image.dir)
                .chain(states.iter().map(|s| &s.dir)),
        )?;
        boot(spec, &states, Resume::Rename, holds, t0, say).await
    }

    /// Start the lab from a whole-lab saved state: every guest as it was after `setup` ran
    /// (e.g. the front-ends' NFS mounts), all paused at one moment and resumed together, so
    /// connections between guests (NFS over TCP, NLM state) carry on. Made on first use by
    /// [`Lab::start`], `setup`, and a save of every guest.
    pub async fn start_prepared(
        spec: LabSpec,
        setup: &[Setup],
        say: &mut dyn FnMut(&str),
    ) -> Result<Lab, VmError> {
        let t0 = Instant::now();
        let mut image_states = Vec::new();
        for g in &spec.guests {
            image_states.push(saved::ensure(&spec.cache_root, &g.image, spec.accel, say).await?);
        }
        let key = lab_key(&spec, &image_states, setup);
        let labs = Store::new(spec.cache_root.join("labs"));
        let name = format!("{}-{key}", spec.segment);
        let dir = labs.entry(&name);
        if !dir.join("lab.json").is_file() {
            let lock = labs
                .lock(&name)
                .map_err(|e| lab_err(format!("locking the lab state: {e}")))?;
            if !dir.join("lab.json").is_file() {
                let work = lock
                    .work()
                    .map_err(|e| lab_err(format!("preparing the lab state: {e}")))?;
                save_lab(&spec, setup, work, say).await?;
            }
        }
        let holds = hold_all(
            spec.guests
                .iter()
                .map(|g| &g.image.dir)
                .chain(image_states.iter().map(|s| &s.dir))
                .chain([&dir]),
        )?;
        let mut states = Vec::new();
        for (g, image_state) in spec.guests.iter().zip(&image_states) {
            let gdir = dir.join(&g.name);
            states.push(saved::Saved {
                meta: image_state.meta.clone(),
                dir: gdir,
            });
        }
        boot(spec, &states, Resume::Together, holds, t0, say).await
    }

    /// Serve each disk with nbdkit and hot-plug it into its guest (which sees it as
    /// `/dev/disk/by-id/virtio-<name>`); returns once every guest has its disks.
    pub async fn add_disks(&mut self, disks: &[DiskSpec]) -> Result<(), VmError> {
        let limit = self.accel.scale(Duration::from_secs(10));
        for d in disks {
            let disk = Disk::serve(d, &self.dir.join("disks"), self.sockets.path())
                .await
                .map_err(|e| VmError::new(&d.guest, format!("disk {}: {e}", d.name)))?;
            let vm = self
                .guests
                .iter_mut()
                .find(|g| g.name == d.guest)
                .ok_or_else(|| {
                    VmError::new(&d.guest, format!("disk {}: no such guest in the lab", d.name))
                })?;
            for (command, args) in disk.hotplug_commands() {
                vm.qmp
                    .execute(command, Some(args), limit)
                    .await
                    .map_err(|e| vm.error(format!("disk {}: {e}", d.name)))?;
            }
            self.disks.push(disk);
        }
        for d in disks {
            let path = d.guest_path();
            let script = format!(
                "for i in $(seq 300); do [ -b {path} ] && exit 0; sleep 0.1; done; \
                 echo \"{path} did not appear\"; ls /dev/disk/by-id >&2; exit 1"
            );
            let Some(vm) = self.guests.iter_mut().find(|g| g.name == d.guest) else {
                continue;
            };
            let out = vm
                .exec(&script, self.accel.scale(Duration::from_secs(40)))
                .await?;
            if !out.ok() {
                return Err(vm.error(format!(
                    "disk {}: {} (by-id: {})",
                    d.name,
                    out.stdout.trim(),
                    out.stderr.split_whitespace().collect::<Vec<_>>().join(" ")
                )));
            }
        }
        Ok(())
    }

    pub fn guest(&mut self, name: &str) -> Option<&mut Machine> {
        self.guests.iter_mut().find(|g| g.name == name)
    }

    pub fn pcap(&self) -> PathBuf {
        self.dir
            .join("wire")
            .join(format!("{}.pcapng", self.switch.name()))
    }

    /// Shut every guest down and stop the switch; returns its final counts.
    pub async fn stop(self) -> SegmentStats {
        for vm in self.guests {
            vm.shutdown().await;
        }
        self.switch.stop().await
    }

    /// Run `script` in every guest at once; the first failure is the error.
    pub async fn exec_all(&mut self, script: &str, limit: Duration) -> Result<(), VmError> {
        futures::future::try_join_all(self.guests.iter_mut().map(|vm| async move {
            let out = vm.exec(script, limit).await?;
            if out.ok() {
                Ok(())
            } else {
                Err(vm.error(format!(
                    "`{script}` exited {}: {}",
                    out.exit_code,
                    out.stderr.trim()
                )))
            }
        }))
        .await
        .map(|_| ())
    }
}

/// A command run in one guest before a whole-lab state is saved.
#[derive(Debug, Clone)]
pub struct Setup {
    pub guest: String,
    pub script: String,
}

/// The standard set-up of the mail lab: every front-end has the filer's export mounted
/// (NFSv3 over TCP) and Dovecot up.
pub fn mounted(frontends: &[&str]) -> Vec<Setup> {
    frontends
        .iter()
        .map(|g| Setup {
            guest: g.to_string(),
            script: "mount /srv/mail && grep ' /srv/mail nfs ' /proc/mounts | grep -q vers=3 \\
                     && systemctl is-active --quiet dovecot"
                .into(),
        })
        .collect()
}

/// The set-up every scenario lab starts from: rpc.statd already running in each guest, as
/// after a first NFS mount. Stock `start-statd` (run by the first NFSv3 mount) does a
/// `systemctl add-wants --runtime`, whose daemon-reload takes about 10 s under TCG; done
/// once here, before the state is saved, it is not paid again by every arm's first mount.
pub fn statd_running(guests: &[&str]) -> Vec<Setup> {
    guests
        .iter()
        .map(|g| Setup {
            guest: g.to_string(),
            script: "[ ! -x /usr/sbin/start-statd ] || /usr/sbin/start-statd".into(),
        })
        .collect()
}

/// How restored guests become ready.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Per-image states: each guest resumes on its own and is then renamed.
    Rename,
    /// A whole-lab state: all guests resume at one moment; names are already theirs.
    Together,
}

fn lab_err(what: String) -> VmError {
    VmError::new("lab", what)
}

/// Hold each cache entry (a folder directly in a store) in use for the lab's life, so
/// `faultline cache prune` leaves it alone and sees it used now.
fn hold_all<'p>(dirs: impl Iterator<Item = &'p PathBuf>) -> Result<Vec<Hold>, VmError> {
    let mut holds = Vec::new();
    for dir in dirs {
        let (Some(store), Some(name)) = (dir.parent(), dir.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy();
        let hold = Store::new(store)
            .hold(&name)
            .map_err(|e| lab_err(format!("holding the cache entry {}: {e}", dir.display())))?
            .ok_or_else(|| {
                lab_err(format!(
                    "the cache entry {} was removed while the lab started; start it again",
                    dir.display()
                ))
            })?;
        holds.push(hold);
    }
    Ok(holds)
}

/// Start the switch and restore every guest onto it from `states` (one per guest, in order).
async fn boot(
    spec: LabSpec,
    states: &[saved::Saved],
    resume: Resume,
    holds: Vec<Hold>,
    t0: Instant,
    say: &mut dyn FnMut(&str),
) -> Result<Lab, VmError> {
    let wire = spec.dir.join("wire");
    std::fs::create_dir_all(&wire).map_err(|e| lab_err(format!("creating {}: {e}", wire.display())))?;
    // The trace holds the lab's traffic: only we may read it.
    std::fs::set_permissions(&wire, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| lab_err(format!("securing {}: {e}", wire.display())))?;
    let sockets =
        crate::sockets::private_dir().map_err(|e| lab_err(format!("creating a socket folder: {e}")))?;
    // QEMU before 7.2 has no `-netdev stream`: its NICs reach the switch over TCP loopback.
    let link = link::host().map_err(|e| lab_err(e.to_string()))?;
    if link != link::Link::Stream {
        say(&format!(
            "NICs link to the switch by TCP loopback (-netdev socket): {}",
            match std::env::var(link::ENV) {
                Ok(v) if !v.trim().is_empty() => format!("{}={v}", link::ENV),
                _ => saved::qemu_version(),
            }
        ));
    }
    let switch = Switch::start(SegmentConfig {
        name: spec.segment.clone(),
        ports: spec.guests.iter().map(|g| g.name.clone()).collect(),
        socket_dir: sockets.path().to_path_buf(),
        listen: match link {
            link::Link::Stream => Listen::Unix,
            link::Link::Socket => Listen::TcpLoopback,
        },
        pcap: wire.join(format!("{}.pcapng", spec.segment)),
    })
    .await
    .map_err(|e| lab_err(format!("starting the switch: {e}")))?;

    let mut guests = Vec::new();
    for (g, state) in spec.guests.iter().zip(states) {
        let backend = match switch.addr(&g.name).expect("every guest has a port") {
            PortAddr::Unix(path) => NicBackend::Stream(path.clone()),
            PortAddr::Tcp(addr) => NicBackend::SwitchTcp(*addr),
        };
        guests.push(
            Machine::start(Launch {
                name: g.name.clone(),
                image: &g.image,
                accel: spec.accel,
                cpus: saved::CPUS,
                memory_mib: saved::MEMORY_MIB,
                extra_cmdline: String::new(),
                nics: vec![saved::lab_nic(backend)],
                dir: spec.dir.join("guests").join(&g.name),
                restore: Some(state),
            })
            .await?,
        );
    }
    let accel = spec.accel;
    let scale = |s: u64| accel.scale(Duration::from_secs(s));
    // Every guest loads its state at the same time; wait for all of them.
    let timings = match resume {
        Resume::Rename => futures::future::try_join_all(guests.iter_mut().map(|vm| ready(vm, accel))).await?,
        Resume::Together => {
            let loaded =
                futures::future::try_join_all(guests.iter_mut().map(|vm| vm.wait_loaded(scale(10), false)))
                    .await?;
            futures::future::try_join_all(guests.iter_mut().map(|vm| vm.resume(scale(5)))).await?;
            futures::future::try_join_all(guests.iter_mut().map(|vm| async move {
                vm.wait_agent(scale(5)).await?;
                vm.set_clock(scale(5)).await?;
                Ok::<_, VmError>(vm.started.elapsed())
            }))
            .await?
            .into_iter()
            .zip(loaded)
            .zip(&guests)
            .map(|((ready, loaded), vm)| StartTiming {
                guest: vm.name.clone(),
                restored_s: loaded.as_secs_f64(),
                ready_s: ready.as_secs_f64(),
            })
            .collect()
        }
    };
    if link == link::Link::Socket {
        refuse_strangers(&switch).await?;
    }
    say(&format!(
        "lab up in {:.2} s: {}",
        t0.elapsed().as_secs_f64(),
        timings
            .iter()
            .map(|t| format!(
                "{} restored {:.2} s, ready {:.2} s",
                t.guest, t.restored_s, t.ready_s
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    Ok(Lab {
        dir: spec.dir,
        accel: spec.accel,
        switch,
        guests,
        timings,
        ready_s: t0.elapsed().as_secs_f64(),
        disks: Vec::new(),
        sockets,
        _holds: holds,
    })
}

/// On TCP loopback ports (which any local user can connect to) each port keeps its first
/// connection only. With every guest up, each port must hold one connection and have
/// refused none: otherwise someone else may have connected before QEMU and holds the port.
async fn refuse_strangers(switch: &Switch) -> Result<(), VmError> {
    let stats = switch.stats().await;
    match stats.ports.iter().find(|p| p.refused > 0 || !p.connected) {
        None => Ok(()),
        Some(p) => Err(lab_err(format!(
            "switch port {} on TCP loopback: {} connection(s), {} refused, connected {}; \
             another local process may have taken the guest's port (set {}=stream on QEMU 7.2 or newer)",
            p.name,
            p.connections,
            p.refused,
            p.connected,
            link::ENV
        ))),
    }
}

/// The key of a whole-lab state: its guests, their images' saved states, the setup, the
/// segment.
fn lab_key(spec: &LabSpec, image_states: &[saved::Saved], setup: &[Setup]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(spec.segment.as_bytes());
    for (g, s) in spec.guests.iter().zip(image_states) {
        for part in [g.name.as_str(), s.meta.key.as_str(), s.meta.image_hash.as_str()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    for s in setup {
        h.update(s.guest.as_bytes());
        h.update([1]);
        h.update(s.script.as_bytes());
        h.update([2]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Start the lab the per-image way in `work`, run `setup`, pause every guest at one moment,
/// and save each one's machine state and frozen disk; then publish them as the lab state.
async fn save_lab(
    spec: &LabSpec,
    setup: &[Setup],
    work: Work<'_>,
    say: &mut dyn FnMut(&str),
) -> Result<(), VmError> {
    let dir = work.path();
    say("saving a lab state (the lab, set up, paused at one moment)");
    let run = LabSpec {
        segment: spec.segment.clone(),
        guests: spec
            .guests
            .iter()
            .map(|g| GuestSpec {
                name: g.name.clone(),
                image: g.image.clone(),
            })
            .collect(),
        accel: spec.accel,
        dir: dir.join("run"),
        cache_root: spec.cache_root.clone(),
    };
    let mut lab = Lab::start(run, say).await?;
    let scale = |s: u64| spec.accel.scale(Duration::from_secs(s));
    for s in setup {
        let vm = lab
            .guest(&s.guest)
            .ok_or_else(|| lab_err(format!("setup names no such guest {}", s.guest)))?;
        let out = vm.exec(&s.script, scale(60)).await?;
        if !out.ok() {
            let e = vm.error(format!(
                "setup `{}` exited {}: {}{}",
                s.script, out.exit_code, out.stdout, out.stderr
            ));
            lab.stop().await;
            return Err(e);
        }
    }
    let settle = lab.exec_all("sync", scale(10)).await;
    if let Err(e) = settle {
        lab.stop().await;
        return Err(e);
    }
    futures::future::try_join_all(lab.guests.iter_mut().map(|vm| vm.pause(scale(5)))).await?;
    let io = |e: std::io::Error| lab_err(format!("writing the lab state: {e}"));
    for vm in &mut lab.guests {
        let gdir = dir.join("state").join(&vm.name);
        std::fs::create_dir_all(&gdir).map_err(io)?;
        vm.save_state(&gdir.join("state"), scale(20)).await?;
    }
    let names: Vec<String> = lab.guests.iter().map(|g| g.name.clone()).collect();
    lab.stop().await;
    for name in &names {
        std::fs::rename(
            dir.join("run").join("guests").join(name).join("disk.qcow2"),
            dir.join("state").join(name).join("disk.qcow2"),
        )
        .map_err(io)?;
    }
    let meta = serde_json::json!({ "guests": names, "setup": setup.iter().map(|s| [&s.guest, &s.script]).collect::<Vec<_>>() });
    std::fs::write(dir.join("state").join("lab.json"), meta.to_string()).map_err(io)?;
    work.publish("state").map_err(io)?;
    Ok(())
}

/// Bring one restored guest to ready: running again, agent answering, then in one guest
/// command (each costs a process start, slow under TCG) its clock set to the host's and its
/// name, address and MAC given.
async fn ready(vm: &mut Machine, accel: Accel) -> Result<StartTiming, VmError> {
    let scale = |s: u64| accel.scale(Duration::from_secs(s));
    let restored = vm.wait_restored(scale(10)).await?;
    vm.wait_agent(scale(5)).await?;
    let name = vm.name.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let script = format!(
        "date -u -s @{}.{:09} >/dev/null && exec /usr/local/sbin/faultline-net {name}",
        now.as_secs(),
        now.subsec_nanos()
    );
    let out = vm.exec(&script, scale(5)).await?;
    if !out.ok() {
        return Err(vm.error(format!("faultline-net {name} failed: {}", out.stderr.trim())));
    }
    Ok(StartTiming {
        guest: name,
        restored_s: restored.as_secs_f64(),
        ready_s: vm.started.elapsed().as_secs_f64(),
    })
}
