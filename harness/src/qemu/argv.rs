//! QEMU's command line, built by pure functions from a [`MachineSpec`] (snapshot-tested).
//!
//! Architecture invariant: nothing here does I/O; the runtime decides paths and the
//! accelerator, this module only spells them the way QEMU wants them (7.2 and newer; 6.2 for
//! everything but `-netdev stream`, see [`crate::qemu::link`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::accel::Accel;

/// One network card: its MAC and how its frames leave QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub mac: String,
    pub backend: NicBackend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicBackend {
    /// A unix stream socket the harness serves (4-byte big-endian length + frame).
    Stream(PathBuf),
    /// A TCP loopback port the harness serves, for QEMU older than 7.2 (no `-netdev stream`):
    /// `-netdev socket` in connect mode frames exactly as `stream` does.
    SwitchTcp(SocketAddr),
    /// A hub port with nothing else on the hub: the card exists, frames go nowhere.
    Unplugged,
    /// QEMU's own point-to-point TCP socket netdev (`listen` on one guest, `connect` on the
    /// other): the baseline the harness's switch is measured against.
    QemuSocket { listen: bool, addr: String },
}

/// Everything QEMU needs to start one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    pub name: String,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The guest's root disk: a throwaway qcow2 overlay.
    pub disk: PathBuf,
    pub qmp_socket: PathBuf,
    pub agent_socket: PathBuf,
    pub console_log: PathBuf,
    pub nics: Vec<Nic>,
    /// Start from this saved machine state (a file written by QMP `migrate`) instead of
    /// booting.
    pub incoming: Option<PathBuf>,
}

/// The MAC of NIC `nic` of the `index`th guest: locally administered, stable across runs.
pub fn mac(index: u8, nic: u8) -> String {
    format!("52:54:00:fa:{nic:02x}:{index:02x}")
}

pub fn argv(spec: &MachineSpec) -> Vec<String> {
    let p = |p: &PathBuf| p.display().to_string().replace(',', ",,");
    let mut a: Vec<String> = Vec::new();
    let mut push = |parts: &[&str]| a.extend(parts.iter().map(|s| s.to_string()));
    push(&["-name", &format!("{},debug-threads=on", spec.name)]);
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    match spec.accel {
        Accel::Kvm => push(&["-machine", "pc", "-accel", "kvm", "-cpu", "host"]),
        // Multi-threaded TCG: one host thread per vCPU.
        Accel::Tcg => push(&["-machine", "pc", "-accel", "tcg,thread=multi", "-cpu", "max"]),
    }
    push(&[
        "-smp",
        &spec.cpus.to_string(),
        "-m",
        &format!("{}M", spec.memory_mib),
    ]);
    push(&[
        "-kernel",
        &p(&spec.kernel),
        "-initrd",
        &p(&spec.initrd),
        "-append",
        &spec.cmdline,
    ]);
    // The overlay is thrown away after the run, so host-side flushes buy nothing.
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
            p(&spec.disk)
        ),
        "-device",
        "virtio-blk-pci,drive=root",
    ]);
    push(&[
        "-chardev",
        &format!("socket,id=qmp,path={},server=on,wait=off", p(&spec.qmp_socket)),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=agent,path={},server=on,wait=off",
            p(&spec.agent_socket)
        ),
        "-device",
        "virtio-serial-pci",
        "-device",
        "virtserialport,chardev=agent,name=org.qemu.guest_agent.0",
    ]);
    push(&[
        "-chardev",
        &format!("file,id=console,path={}", p(&spec.console_log)),
        "-serial",
        "chardev:console",
    ]);
    // A new generation id at every start tells a guest restored from saved state that it is
    // a clone, so its kernel reseeds its random generator (clones must not share TCP
    // sequence numbers, NLM cookies or RPC XIDs).
    push(&["-device", "vmgenid,guid=auto"]);
    for (i, nic) in spec.nics.iter().enumerate() {
        let id = format!("net{i}");
        let backend = match &nic.backend {
            NicBackend::Stream(sock) => {
                format!("stream,id={id},server=off,addr.type=unix,addr.path={}", p(sock))
            }
            NicBackend::SwitchTcp(addr) => format!("socket,id={id},connect={addr}"),
            NicBackend::Unplugged => format!("hubport,id={id},hubid={}", 100 + i),
            NicBackend::QemuSocket { listen, addr } => {
                format!(
                    "socket,id={id},{}={addr}",
                    if *listen { "listen" } else { "connect" }
                )
            }
        };
        push(&["-netdev", &backend]);
        // romfile= skips the iPXE option ROM: we boot the kernel directly.
        push(&[
            "-device",
            &format!("virtio-net-pci,netdev={id},mac={},romfile=", nic.mac),
        ]);
    }
    if let Some(state) = &spec.incoming {
        // exec: because QEMU 7.2 has no file: migration URI.
        let quoted = format!("'{}'", state.display().to_string().replace('\'', r"'\''"));
        push(&["-incoming", &format!("exec:cat {quoted}")]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel) -> MachineSpec {
        MachineSpec {
            name: "imap1".into(),
            accel,
            cpus: 2,
            memory_mib: 1024,
            kernel: "/cache/images/frontend-0123/vmlinuz".into(),
            initrd: "/cache/images/frontend-0123/initrd.img".into(),
            cmdline: "root=/dev/vda rw console=ttyS0 faultline.name=imap1".into(),
            disk: "/run/x/imap1/disk.qcow2".into(),
            qmp_socket: "/run/x/imap1/qmp.sock".into(),
            agent_socket: "/run/x/imap1/agent.sock".into(),
            console_log: "/run/x/imap1/console,log".into(),
            nics: vec![
                Nic {
                    mac: mac(1, 0),
                    backend: NicBackend::Stream("/run/x/wire/lan-imap1.sock".into()),
                },
                Nic {
                    mac: mac(1, 1),
                    backend: NicBackend::Unplugged,
                },
            ],
            incoming: None,
        }
    }

    #[test]
    fn a_restore_reads_the_saved_state() {
        let mut s = spec(Accel::Tcg);
        s.incoming = Some("/cache/states/frontend-1/state".into());
        let a = argv(&s);
        assert_eq!(
            a[a.len() - 2..],
            ["-incoming", "exec:cat '/cache/states/frontend-1/state'"]
        );
    }

    #[test]
    fn tcg_guest() {
        insta::assert_debug_snapshot!(argv(&spec(Accel::Tcg)));
    }

    /// QEMU 6.2 (Ubuntu 22.04) reaches the switch over TCP loopback; nothing else changes.
    #[test]
    fn a_guest_on_old_qemu_connects_to_a_tcp_port() {
        let mut s = spec(Accel::Tcg);
        s.nics[0].backend = NicBackend::SwitchTcp("127.0.0.1:40123".parse().unwrap());
        let a = argv(&s);
        insta::assert_debug_snapshot!(a);
        let tcp = a.iter().position(|x| x.starts_with("socket,id=net0")).unwrap();
        let stream = argv(&spec(Accel::Tcg));
        assert_eq!(a[..tcp], stream[..tcp]);
        assert_eq!(a[tcp + 1..], stream[tcp + 1..]);
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let a = argv(&spec(Accel::Kvm));
        assert!(a.windows(2).any(|w| w == ["-cpu", "host"]));
        assert!(a.windows(2).any(|w| w == ["-accel", "kvm"]));
    }

    #[test]
    fn macs_are_stable_and_local() {
        assert_eq!(mac(1, 0), "52:54:00:fa:00:01");
        assert_eq!(mac(12, 1), "52:54:00:fa:01:0c");
    }
}
