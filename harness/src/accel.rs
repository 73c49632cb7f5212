//! KVM or TCG, decided once per run.
//!
//! `/dev/kvm` alone proves nothing: on a PVM-based nested host it exists, yet a stock kernel
//! under `-accel kvm` hangs at "Booting from ROM" and `-cpu host` aborts. So KVM is chosen
//! only when the CPU advertises vmx/svm *and* a short probe boot of a real kernel prints its
//! banner on the serial line before a deadline. Anything else is TCG.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// Scale a deadline written for KVM to this accelerator (TCG is 4–6× slower here).
    pub fn scale(self, kvm: Duration) -> Duration {
        match self {
            Accel::Kvm => kvm,
            Accel::Tcg => kvm * 6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Accel, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown accelerator {other:?}: use kvm or tcg")),
        }
    }
}

/// The accelerator chosen and why, for the run's log and report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub accel: Accel,
    pub reason: String,
}

/// How long the KVM probe may take to show a kernel banner.
const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// Choose the accelerator. `forced` (from `--accel` or `FAULTLINE_ACCEL`) wins; otherwise
/// KVM must pass [`cpu_virt_flags`] and a probe boot of `probe_kernel`.
pub fn decide(forced: Option<Accel>, probe_kernel: Option<&Path>) -> Decision {
    if let Some(accel) = forced {
        return Decision {
            accel,
            reason: "chosen by the user".into(),
        };
    }
    if let Ok(v) = std::env::var("FAULTLINE_ACCEL") {
        if let Ok(accel) = v.parse() {
            return Decision {
                accel,
                reason: "FAULTLINE_ACCEL".into(),
            };
        }
    }
    let tcg = |reason: String| Decision {
        accel: Accel::Tcg,
        reason,
    };
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return tcg("no usable /dev/kvm".into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpu_virt_flags(&cpuinfo) {
        return tcg("/dev/kvm exists but the CPU shows no vmx/svm flag (a nested host where stock kernels hang under KVM)".into());
    }
    let Some(kernel) = probe_kernel else {
        return tcg("no kernel to probe KVM with yet".into());
    };
    match probe(kernel) {
        Ok(t) => Decision {
            accel: Accel::Kvm,
            reason: format!(
                "probe kernel printed its banner under KVM in {:.1} s",
                t.as_secs_f64()
            ),
        },
        Err(why) => tcg(format!("KVM probe failed: {why}")),
    }
}

/// Whether /proc/cpuinfo's flags include hardware virtualisation.
pub fn cpu_virt_flags(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Boot `kernel` under KVM with no root disk; its banner on the serial line within the
/// deadline means KVM really runs a stock kernel here.
fn probe(kernel: &Path) -> Result<Duration, String> {
    let start = Instant::now();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "pc",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256M",
        "-serial",
        "stdio",
        "-append",
        "console=ttyS0 panic=-1",
        "-kernel",
    ])
    .arg(kernel)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = procs::spawn(&mut cmd).map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut out = child.take_stdout().ok_or("no stdout")?;
    // Read on a thread so the deadline holds even when QEMU prints nothing at all.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(13).any(|w| w == b"Linux version") {
                let _ = tx.send(());
                return;
            }
        }
    });
    let result = rx
        .recv_timeout(PROBE_DEADLINE)
        .map(|_| start.elapsed())
        .map_err(|_| format!("no kernel banner within {PROBE_DEADLINE:?}"));
    child.terminate(Duration::from_millis(200));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_the_flags_line_only() {
        assert!(cpu_virt_flags("processor : 0\nflags\t\t: fpu vme de vmx sse\n"));
        assert!(cpu_virt_flags("flags : fpu svm\n"));
        assert!(!cpu_virt_flags(
            "flags : fpu vme hypervisor\nmodel name : vmx-lookalike\n"
        ));
    }

    #[test]
    fn this_host_decides_without_hanging() {
        let start = Instant::now();
        let d = decide(None, None);
        assert!(start.elapsed() < PROBE_DEADLINE + Duration::from_secs(5));
        assert!(!d.reason.is_empty());
    }

    #[test]
    fn tcg_deadlines_are_longer() {
        assert!(Accel::Tcg.scale(Duration::from_secs(10)) > Accel::Kvm.scale(Duration::from_secs(10)));
    }
}
