//! `faultline images check`: boot each image and confirm, through its guest agent, that it is
//! what its manifest says: the kernel release, the role's services active, and every package
//! at the recorded version.
//!
//! It lives with images, one floor above `qemu`: it needs an image's manifest and drives a
//! [`Machine`], and nothing in `qemu` may know about images.

use std::path::Path;
use std::time::Duration;

use crate::accel::Accel;
use crate::images::Image;
use crate::qemu::{argv, Launch, Machine, Nic, NicBackend, VmError};

/// What booting one image showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub image: String,
    pub accel: Accel,
    /// QEMU start to the first guest-agent reply.
    pub boot_to_agent_s: f64,
    /// QEMU start to `systemctl is-system-running --wait` returning.
    pub boot_to_ready_s: f64,
    pub kernel_release: String,
    pub system_state: String,
    /// Everything that differs from the manifest; empty means the image passed.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Boot `image` in `work` (its overlay, sockets and console log go there) and compare.
pub async fn check(image: &Image, accel: Accel, work: &Path) -> Result<CheckReport, VmError> {
    let m = &image.manifest;
    let launch = Launch {
        name: m.name.clone(),
        image,
        accel,
        cpus: 2,
        memory_mib: 1024,
        extra_cmdline: String::new(),
        nics: vec![Nic {
            mac: argv::mac(1, 0),
            backend: NicBackend::Unplugged,
        }],
        dir: work.join(&m.name),
        restore: None,
    };
    let mut vm = Machine::start(launch).await?;
    let result = inspect(&mut vm, image).await;
    vm.shutdown().await;
    result
}

async fn inspect(vm: &mut Machine, image: &Image) -> Result<CheckReport, VmError> {
    let m = &image.manifest;
    let accel = vm.accel;
    let scale = |s: u64| accel.scale(Duration::from_secs(s));
    let boot_to_agent = vm.wait_agent(scale(50)).await?;
    let state = vm.exec("systemctl is-system-running --wait", scale(30)).await?;
    let ready = vm.started.elapsed();
    let mut problems = Vec::new();
    let system_state = state.stdout.trim().to_string();
    if system_state != "running" {
        let failed = vm
            .exec("systemctl --failed --no-legend --plain | cut -d' ' -f1", scale(5))
            .await?;
        problems.push(format!(
            "system is {system_state:?}; failed units: {}",
            failed.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let uname = vm.exec("uname -r", scale(5)).await?;
    let kernel_release = uname.stdout.trim().to_string();
    if kernel_release != m.kernel_release {
        problems.push(format!(
            "kernel is {kernel_release}, manifest says {}",
            m.kernel_release
        ));
    }
    for svc in &m.check_services {
        let s = vm.exec(&format!("systemctl is-active {svc}"), scale(5)).await?;
        if s.stdout.trim() != "active" {
            problems.push(format!("{svc} is {}", s.stdout.trim()));
        }
    }
    let pk = vm
        .exec("dpkg-query -W -f '${Package}\\t${Version}\\n'", scale(10))
        .await?;
    let in_guest: std::collections::BTreeMap<&str, &str> = pk
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    for (p, v) in &m.packages {
        match in_guest.get(p.as_str()) {
            Some(g) if g == v => {}
            Some(g) => problems.push(format!("package {p} is {g} in the guest, {v} in the manifest")),
            None => problems.push(format!("package {p} {v} is in the manifest but not in the guest")),
        }
    }
    for (p, v) in &in_guest {
        if !m.packages.contains_key(*p) {
            problems.push(format!("package {p} {v} is in the guest but not in the manifest"));
        }
    }
    if let Some(src) = &m.source {
        problems.extend(check_built(vm, src, scale(20)).await?);
    }
    Ok(CheckReport {
        image: m.name.clone(),
        accel: vm.accel,
        boot_to_agent_s: round1(boot_to_agent),
        boot_to_ready_s: round1(ready),
        kernel_release,
        system_state,
        problems,
    })
}

/// The packages built from source are the ones installed: dpkg's copy of each package's
/// md5sums has the bytes of the built .deb's (a package of the same version built from
/// other patches has other digests), and `dpkg --verify` finds every file as installed.
async fn check_built(
    vm: &mut Machine,
    src: &crate::images::source::SourceRecord,
    limit: Duration,
) -> Result<Vec<String>, VmError> {
    let mut problems = Vec::new();
    let names: Vec<&str> = src.debs.keys().map(String::as_str).collect();
    let files: Vec<String> = names
        .iter()
        .map(|p| format!("/var/lib/dpkg/info/{p}.md5sums"))
        .collect();
    let sums = vm.exec(&format!("sha256sum {}", files.join(" ")), limit).await?;
    let got: std::collections::BTreeMap<&str, &str> = sums
        .stdout
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, f)| (f, h))
        .collect();
    for (pkg, deb) in &src.debs {
        let file = format!("/var/lib/dpkg/info/{pkg}.md5sums");
        match got.get(file.as_str()) {
            Some(h) if *h == deb.md5sums_sha256 => {}
            Some(_) => problems.push(format!(
                "package {pkg} in the guest is not the one built from {} {} with {} patch(es) ({})",
                src.package,
                src.version,
                src.patches.len(),
                deb.file
            )),
            None => problems.push(format!("package {pkg}: no {file} in the guest")),
        }
    }
    let verify = vm
        .exec(&format!("dpkg --verify {}", names.join(" ")), limit)
        .await?;
    for l in verify.stdout.lines().filter(|l| !l.trim().is_empty()) {
        // Conffiles the recipe's own files or commands changed are expected to differ, and
        // documentation is left out of every image on purpose.
        let path = l.split_whitespace().last().unwrap_or_default();
        let expected =
            l.contains(" c /etc/") || (l.starts_with("missing") && crate::images::plan::left_out(path));
        if !expected {
            problems.push(format!("dpkg --verify: {l}"));
        }
    }
    Ok(problems)
}

fn round1(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Used by callers that want one line per image.
pub fn summary(r: &CheckReport) -> String {
    let verdict = if r.passed() { "ok  " } else { "FAIL" };
    let mut s = format!(
        "{verdict} {}: kernel {}, agent after {:.1} s, ready after {:.1} s ({})",
        r.image,
        r.kernel_release,
        r.boot_to_agent_s,
        r.boot_to_ready_s,
        r.accel.as_str()
    );
    for p in &r.problems {
        s.push_str(&format!("\n     - {p}"));
    }
    s
}
