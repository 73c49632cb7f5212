//! A running lab: guests restored from saved states, wired through one switch segment, each
//! given its lab name and address.
//!
//! Architecture invariant: the lab owns every process it starts (QEMU through
//! [`crate::qemu::Machine`]); dropping a `Lab` kills them all, and [`Lab::stop`] also flushes
//! the segment's pcapng and returns the switch's final counts.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::accel::Accel;
use crate::images::Image;
use crate::qemu::{saved, Launch, Machine, NicBackend, VmError};
use crate::wire::switch::{SegmentConfig, SegmentStats, Switch};

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
}

impl Lab {
    /// Make sure each image has a saved state, start the switch, restore every guest on it,
    /// and rename each one. `say` gets progress lines.
    pub async fn start(spec: LabSpec, say: &mut dyn FnMut(&str)) -> Result<Lab, VmError> {
        let t0 = Instant::now();
        let lab_err = |what: String| VmError {
            guest: "lab".into(),
            what,
            stderr: String::new(),
            console: String::new(),
        };
        let mut states = Vec::new();
        for g in &spec.guests {
            states.push(saved::ensure(&spec.cache_root, &g.image, spec.accel, say).await?);
        }
        let wire = spec.dir.join("wire");
        std::fs::create_dir_all(&wire).map_err(|e| lab_err(format!("creating {}: {e}", wire.display())))?;
        // Sockets carry the lab's traffic: only we may connect to them.
        std::fs::set_permissions(&wire, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| lab_err(format!("securing {}: {e}", wire.display())))?;
        let switch = Switch::start(SegmentConfig {
            name: spec.segment.clone(),
            ports: spec.guests.iter().map(|g| g.name.clone()).collect(),
            socket_dir: wire.clone(),
            pcap: wire.join(format!("{}.pcapng", spec.segment)),
        })
        .await
        .map_err(|e| lab_err(format!("starting the switch: {e}")))?;

        let mut guests = Vec::new();
        for (g, state) in spec.guests.iter().zip(&states) {
            let socket = switch
                .socket(&g.name)
                .expect("every guest has a port")
                .to_path_buf();
            let vm = Machine::start(Launch {
                name: g.name.clone(),
                image: &g.image,
                accel: spec.accel,
                cpus: saved::CPUS,
                memory_mib: saved::MEMORY_MIB,
                extra_cmdline: String::new(),
                nics: vec![saved::lab_nic(NicBackend::Stream(socket))],
                dir: spec.dir.join("guests").join(&g.name),
                restore: Some(state),
            })
            .await?;
            guests.push(vm);
        }
        // Every guest loads its state and answers at the same time; wait for all of them.
        let accel = spec.accel;
        let timings = futures::future::try_join_all(guests.iter_mut().map(|vm| ready(vm, accel))).await?;
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
        })
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

    /// Where a guest's files are.
    pub fn guest_dir(&self, name: &str) -> PathBuf {
        self.dir.join("guests").join(name)
    }
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
