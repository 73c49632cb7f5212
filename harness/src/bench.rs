//! `faultline bench` (`make bench`): the performance figures the design targets, measured side
//! by side in one run so the ratios hold on a noisy shared machine.
//!
//! 1. Guest start: a cold systemd boot vs a start from saved state, per image, to an
//!    answering guest agent.
//! 2. Throughput between two guests (iperf3, TCP): through the harness's switch with pcap on
//!    vs QEMU's own `-netdev socket` link.
//! 3. Frames per second through the switch with pcap on, from test ports (no guests).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::accel::Accel;
use crate::images::Image;
use crate::lab::{GuestSpec, Lab, LabSpec};
use crate::qemu::{saved, Launch, Machine, NicBackend, VmError};
use crate::wire::switch::{Listen, SegmentConfig, Switch, TestPort};

#[derive(Debug, Clone, Serialize)]
pub struct StartFigures {
    pub image: String,
    pub cold_boot_to_agent_s: f64,
    pub saved_state_to_agent_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub accel: Accel,
    pub starts: Vec<StartFigures>,
    /// filer, imap1, imap2 from per-image states, renamed.
    pub lab_ready_s: f64,
    /// The same lab from its whole-lab state, NFS mounted, resumed together.
    pub mounted_lab_ready_s: f64,
    pub iperf_switch_mbit: f64,
    pub iperf_qemu_socket_mbit: f64,
    pub iperf_switch_runs: Vec<f64>,
    pub iperf_qemu_socket_runs: Vec<f64>,
    pub switch_frames_per_s: f64,
    pub switch_mbyte_per_s: f64,
}

impl Report {
    pub fn render(&self) -> String {
        let mut s = format!(
            "accelerator: {}\n\nguest start to an answering agent:\n",
            self.accel.as_str()
        );
        for st in &self.starts {
            s.push_str(&format!(
                "  {:<10} cold boot {:>6.2} s   saved state {:>5.2} s   ({:.0}x)\n",
                st.image,
                st.cold_boot_to_agent_s,
                st.saved_state_to_agent_s,
                st.cold_boot_to_agent_s / st.saved_state_to_agent_s.max(1e-3)
            ));
        }
        s.push_str(&format!(
            "  three-guest lab (filer, imap1, imap2), per-image states, renamed: {:.2} s\n",
            self.lab_ready_s
        ));
        s.push_str(&format!(
            "  three-guest lab from its whole-lab state (NFS mounted, Dovecot up): {:.2} s\n\n",
            self.mounted_lab_ready_s
        ));
        s.push_str(&format!(
            "iperf3 imap1 -> imap2 (TCP, 5 s, mean of 2 alternating runs):\n  harness switch, pcap on {:>8.0} Mbit/s\n  QEMU -netdev socket     {:>8.0} Mbit/s   (switch = {:.0}% of QEMU's)\n\n",
            self.iperf_switch_mbit,
            self.iperf_qemu_socket_mbit,
            100.0 * self.iperf_switch_mbit / self.iperf_qemu_socket_mbit.max(1e-3)
        ));
        s.push_str(&format!(
            "switch alone, 1514-byte frames, pcap on: {:.0} frames/s ({:.0} MB/s)\n",
            self.switch_frames_per_s, self.switch_mbyte_per_s
        ));
        s
    }
}

pub async fn run(
    filer: &Image,
    frontend: &Image,
    accel: Accel,
    cache_root: &Path,
    work: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Report, VmError> {
    let err = |what: String| VmError::new("bench", what);
    let mut starts = Vec::new();
    for image in [filer, frontend] {
        let state = saved::ensure(cache_root, image, accel, say).await?;
        say(&format!("{}: cold boot", image.manifest.name));
        let cold = start_once(
            image,
            accel,
            &work.join(format!("cold-{}", image.manifest.name)),
            None,
        )
        .await?;
        say(&format!("{}: start from saved state", image.manifest.name));
        let warm = start_once(
            image,
            accel,
            &work.join(format!("warm-{}", image.manifest.name)),
            Some(&state),
        )
        .await?;
        starts.push(StartFigures {
            image: image.manifest.name.clone(),
            cold_boot_to_agent_s: round2(cold),
            saved_state_to_agent_s: round2(warm),
        });
    }

    let spec = |dir: &str, guests: Vec<GuestSpec>| LabSpec {
        segment: "lan".into(),
        guests,
        accel,
        dir: work.join(dir),
        cache_root: cache_root.to_path_buf(),
    };
    say("the three-guest lab from per-image states");
    let lab = Lab::start(spec("lab", lab_guests(filer, frontend)), say).await?;
    let lab_ready_s = lab.ready_s;
    lab.stop().await;

    say("the mounted lab from its whole-lab state");
    let setup = crate::lab::mounted(&["imap1", "imap2"]);
    // The first start may have to make the state; the second is the figure.
    Lab::start_prepared(spec("mounted-0", lab_guests(filer, frontend)), &setup, say)
        .await?
        .stop()
        .await;
    let lab = Lab::start_prepared(spec("mounted", lab_guests(filer, frontend)), &setup, say).await?;
    let mounted_lab_ready_s = lab.ready_s;
    lab.stop().await;

    // The same two guests each way, alternating, so drift on a shared machine hits both.
    let mut switch_runs = Vec::new();
    let mut socket_runs = Vec::new();
    for round in 0..2 {
        say(&format!("iperf3 through the switch ({})", round + 1));
        let pair = vec![
            GuestSpec {
                name: "imap1".into(),
                image: frontend.clone(),
            },
            GuestSpec {
                name: "imap2".into(),
                image: frontend.clone(),
            },
        ];
        let mut lab = Lab::start(spec(&format!("iperf-{round}"), pair), say).await?;
        let r = iperf_pair(&mut lab.guests, accel).await;
        lab.stop().await;
        switch_runs.push(r?);
        say(&format!("iperf3 through QEMU's -netdev socket ({})", round + 1));
        let dir = work.join(format!("socket-{round}"));
        socket_runs.push(qemu_socket_iperf(frontend, accel, cache_root, &dir, say).await?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (switch_mbit, socket_mbit) = (mean(&switch_runs), mean(&socket_runs));

    say("switch frames per second");
    let (fps, mbps) = switch_rate(work)
        .await
        .map_err(|e| err(format!("switch benchmark: {e}")))?;
    Ok(Report {
        accel,
        starts,
        lab_ready_s: round2(Duration::from_secs_f64(lab_ready_s)),
        mounted_lab_ready_s: round2(Duration::from_secs_f64(mounted_lab_ready_s)),
        iperf_switch_mbit: switch_mbit,
        iperf_qemu_socket_mbit: socket_mbit,
        iperf_switch_runs: switch_runs,
        iperf_qemu_socket_runs: socket_runs,
        switch_frames_per_s: fps,
        switch_mbyte_per_s: mbps,
    })
}

fn lab_guests(filer: &Image, frontend: &Image) -> Vec<GuestSpec> {
    vec![
        GuestSpec {
            name: "filer".into(),
            image: filer.clone(),
        },
        GuestSpec {
            name: "imap1".into(),
            image: frontend.clone(),
        },
        GuestSpec {
            name: "imap2".into(),
            image: frontend.clone(),
        },
    ]
}

/// Two front-ends from saved state joined by QEMU's own `-netdev socket`; iperf3 between them.
async fn qemu_socket_iperf(
    frontend: &Image,
    accel: Accel,
    cache_root: &Path,
    work: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<f64, VmError> {
    let err = |what: String| VmError::new("bench", what);
    let state = saved::ensure(cache_root, frontend, accel, say).await?;
    let port = free_port().map_err(|e| err(format!("finding a free port: {e}")))?;
    let addr = format!("127.0.0.1:{port}");
    let mut pair = Vec::new();
    for (name, listen) in [("imap1", true), ("imap2", false)] {
        let mut vm = Machine::start(Launch {
            name: name.into(),
            image: frontend,
            accel,
            cpus: saved::CPUS,
            memory_mib: saved::MEMORY_MIB,
            extra_cmdline: String::new(),
            nics: vec![saved::lab_nic(NicBackend::QemuSocket {
                listen,
                addr: addr.clone(),
            })],
            dir: work.join(name),
            restore: Some(&state),
        })
        .await?;
        vm.wait_restored(accel.scale(Duration::from_secs(10))).await?;
        vm.wait_agent(accel.scale(Duration::from_secs(5))).await?;
        vm.exec(
            &format!("/usr/local/sbin/faultline-net {name}"),
            accel.scale(Duration::from_secs(5)),
        )
        .await?;
        pair.push(vm);
    }
    let mbit = iperf_pair(&mut pair, accel).await;
    for vm in pair {
        vm.shutdown().await;
    }
    mbit
}

/// Start one guest (cold, or from `state`) and return the time to its agent's first answer.
async fn start_once(
    image: &Image,
    accel: Accel,
    dir: &Path,
    state: Option<&saved::Saved>,
) -> Result<Duration, VmError> {
    let mut vm = Machine::start(Launch {
        name: image.manifest.name.clone(),
        image,
        accel,
        cpus: saved::CPUS,
        memory_mib: saved::MEMORY_MIB,
        extra_cmdline: String::new(),
        nics: vec![saved::lab_nic(NicBackend::Unplugged)],
        dir: dir.to_path_buf(),
        restore: state,
    })
    .await?;
    if state.is_some() {
        vm.wait_restored(accel.scale(Duration::from_secs(10))).await?;
    }
    let t = vm.wait_agent(accel.scale(Duration::from_secs(50))).await;
    vm.shutdown().await;
    t
}

/// iperf3 from the first guest to the second (named imap1 and imap2), in Mbit/s.
async fn iperf_pair(vms: &mut [Machine], accel: Accel) -> Result<f64, VmError> {
    let limit = accel.scale(Duration::from_secs(10));
    vms[1].exec("iperf3 -s -D -1", limit).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = vms[0].exec("iperf3 -c imap2 -t 5 -J", limit * 2).await?;
    if !out.ok() {
        return Err(vms[0].error(format!("iperf3 failed: {}{}", out.stdout, out.stderr)));
    }
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).map_err(|e| vms[0].error(format!("iperf3 output: {e}")))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    Ok((bps / 1e6).round())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Push 1514-byte frames from one test port to another through a segment with pcap on.
async fn switch_rate(work: &Path) -> std::io::Result<(f64, f64)> {
    let dir = work.join("switch");
    std::fs::create_dir_all(&dir)?;
    let sockets = crate::sockets::private_dir()?;
    let sw = Switch::start(SegmentConfig {
        name: "bench".into(),
        ports: vec!["a".into(), "b".into()],
        socket_dir: sockets.path().to_path_buf(),
        listen: Listen::Unix,
        pcap: dir.join("bench.pcapng"),
    })
    .await?;
    let mut a = TestPort::connect(sw.socket("a").expect("port a")).await?;
    let mut b = TestPort::connect(sw.socket("b").expect("port b")).await?;
    let mut frame = vec![0u8; 1514];
    frame[..6].copy_from_slice(&[0x52, 0x54, 0, 0xfa, 0, 0x0b]);
    frame[6..12].copy_from_slice(&[0x52, 0x54, 0, 0xfa, 0, 0x0a]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    // b announces itself so frames to it are unicast.
    let mut hello = frame.clone();
    hello[..6].copy_from_slice(&[0xff; 6]);
    hello[6..12].copy_from_slice(&[0x52, 0x54, 0, 0xfa, 0, 0x0b]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.send(&hello).await?;
    let _ = a.recv(Duration::from_secs(2)).await?;
    const N: usize = 100_000;
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..N {
            a.send(&frame).await?;
        }
        Ok::<_, std::io::Error>(a)
    });
    // Frames the switch could not queue toward b are dropped and counted, not waited for: the
    // rate is what was delivered by the time the last frame arrived.
    let mut got = 0;
    let mut last = t;
    while got < N {
        match b.recv(Duration::from_secs(2)).await? {
            Some(_) => {
                got += 1;
                last = Instant::now();
            }
            None => break,
        }
    }
    let elapsed = (last - t).as_secs_f64().max(1e-6);
    let _ = sender.await;
    sw.stop().await;
    let _ = std::fs::remove_file(dir.join("bench.pcapng"));
    Ok((
        (got as f64 / elapsed).round(),
        (got as f64 * 1514.0 / elapsed / 1e6).round(),
    ))
}

fn round2(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}
