//! A report a vendor can act on: one arm of an existing run as one folder and a `.tar.gz` of
//! it (`faultline report --vendor CASE::ARM`), readable without the rest of the run folder.
//!
//! - `cite.rs` — the frames and log lines an arm's record cites (pure).
//! - `cut.rs` — those frames, with context, cut out of a trace into a small pcapng (pure).
//! - `summary.rs` — `SUMMARY.md` from the records and the cuts (pure, snapshot-tested).
//! - `scrub.rs` — the host's paths and name taken out of every text (pure).
//! - here — reading the run folder, writing the bundle.
//!
//! Architecture invariant: the bundle is written under a temporary name beside its final
//! place and renamed (folder and archive alike), so a bundle is whole or absent; nothing in it
//! names a host path or the host (`scrub`, checked again on the finished texts). The run
//! folder is only read.

pub mod cite;
pub mod cut;
pub mod scrub;
pub mod summary;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::Exit;
use crate::results::{ArmRecord, EventKind, RunRecord};
use cite::Citations;
use scrub::Host;
use summary::{ArmView, CutDone, CutView, LineExcerpt, Summary, CONTEXT_FRAMES, CONTEXT_LINES};

/// A guest text is read this far at most: the lines a check cites are in the first lines a
/// check reads, and a bundle stays small.
const TEXT_MAX: u64 = 64 << 20;
/// A trace is read this far at most.
const TRACE_MAX: u64 = 2 << 30;
/// How long `tar` may take over a bundle of a few hundred KB.
const TAR_LIMIT: Duration = Duration::from_secs(120);

/// Why no bundle was made.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error("{0}: no run folder (no run.json there): {1}")]
    NoRun(String, String),
    #[error("`{0}` is not CASE::ARM (e.g. nlm-reclaim-lost::bug)")]
    BadName(String),
    #[error("the run holds no arm {0}; it holds: {1}")]
    UnknownArm(String, String),
    #[error("writing the bundle into {0}: {1}")]
    Write(String, String),
    #[error("the bundle would name the host ({0}); nothing was written")]
    Leak(String),
}

impl VendorError {
    pub fn exit_code(&self) -> u8 {
        match self {
            VendorError::NoRun(..) | VendorError::BadName(_) | VendorError::UnknownArm(..) => {
                Exit::Input.code()
            }
            VendorError::Write(..) | VendorError::Leak(_) => Exit::Broken.code(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub dir: PathBuf,
    pub archive: PathBuf,
}

/// The bundle of `name` (`case::arm`) of the run in `run_dir`, written into `out` (default
/// `<run_dir>/vendor/`) as `<case>--<arm>/` and `<case>--<arm>.tar.gz`.
pub fn make(run_dir: &Path, name: &str, out: Option<&Path>) -> Result<Bundle, VendorError> {
    let run = RunRecord::load(run_dir)
        .map_err(|e| VendorError::NoRun(run_dir.display().to_string(), e.to_string()))?;
    let (case, arm_name) = name
        .split_once("::")
        .filter(|(c, a)| !c.is_empty() && !a.is_empty())
        .ok_or_else(|| VendorError::BadName(name.to_string()))?;
    let arm = run
        .arms
        .iter()
        .find(|a| a.case == case && a.arm == arm_name)
        .ok_or_else(|| {
            let held: Vec<String> = run
                .arms
                .iter()
                .map(|a| format!("{}::{}", a.case, a.arm))
                .collect();
            VendorError::UnknownArm(name.to_string(), held.join(", "))
        })?;
    let compare = compared_arm(&run, arm);
    let host = host_of(run_dir, out);
    let base = format!("{}--{}", arm.case, arm.arm);
    let out = out.map_or_else(|| run_dir.join("vendor"), Path::to_path_buf);
    let write_err = |e: io::Error| VendorError::Write(host.scrub(&out.display().to_string()), e.to_string());

    // Every file, as bytes, before anything is written: the leak check sees them all.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let arm_view = view(run_dir, arm, &mut files);
    let compare_view = compare.map(|c| view(run_dir, c, &mut files));
    let summary = summary::render(&Summary {
        run: &run,
        arm: arm_view,
        compare: compare_view,
    });
    files.push(("SUMMARY.md".into(), host.scrub(&summary).into_bytes()));
    let mut own = run.clone();
    own.arms = std::iter::once(arm).chain(compare).cloned().collect();
    for a in &mut own.arms {
        a.rerun = scrub::rerun_relative(&a.rerun);
    }
    own.rerun = scrub::rerun_relative(&own.rerun);
    // A sweep belongs in the bundle only with one of its sizes.
    let arms = &own.arms;
    own.sweeps
        .retain(|s| s.measured.iter().any(|m| arms.iter().any(|a| a.dir == m.dir)));
    let json = serde_json::to_string_pretty(&own).expect("a run record serializes");
    files.push(("run.json".into(), host.scrub(&json).into_bytes()));
    for (file, bytes) in &files {
        if file.ends_with(".md") || file.ends_with(".json") {
            let leaks = host.leaks(&String::from_utf8_lossy(bytes));
            if !leaks.is_empty() {
                return Err(VendorError::Leak(format!("{file}: {} place(s)", leaks.len())));
            }
        }
    }

    std::fs::create_dir_all(&out).map_err(write_err)?;
    let dir = out.join(&base);
    let archive = out.join(format!("{base}.tar.gz"));
    write_dir(&out, &base, &files).map_err(write_err)?;
    write_archive(&out, &base, run.started_unix).map_err(write_err)?;
    Ok(Bundle { dir, archive })
}

/// The arm a vendor compares with: the case's `fixed` arm, else its `baseline`, never the arm
/// itself.
fn compared_arm<'a>(run: &'a RunRecord, arm: &ArmRecord) -> Option<&'a ArmRecord> {
    ["fixed", "baseline"].iter().find_map(|want| {
        run.arms
            .iter()
            .find(|a| a.case == arm.case && a.arm == *want && a.arm != arm.arm)
    })
}

/// The host as the bundle must not show it: the run folder, the output folder, the project
/// the command runs in, the home and cache folders, and the host's name.
pub fn host_of(run_dir: &Path, out: Option<&Path>) -> Host {
    let abs = |p: &Path| std::fs::canonicalize(p).ok().map(|p| p.display().to_string());
    let mut paths = Vec::new();
    for (p, to) in [
        (Some(run_dir.to_path_buf()), "<run>"),
        (out.map(Path::to_path_buf), "<out>"),
        (std::env::current_dir().ok(), "."),
        (Some(crate::images::cache::default_root()), "<cache>"),
        (std::env::var_os("HOME").map(PathBuf::from), "~"),
    ] {
        let Some(p) = p else { continue };
        // Both as given and as it resolves (results/latest is a link).
        if p.is_absolute() {
            paths.push((p.display().to_string(), to.to_string()));
        }
        if let Some(a) = abs(&p) {
            paths.push((a, to.to_string()));
        }
    }
    Host::new(paths, host_name())
}

/// The host's name, as the kernel has it.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

/// The arm with its cited frames cut and its cited lines read; the cuts' bytes go into
/// `files`.
fn view<'a>(run_dir: &Path, arm: &'a ArmRecord, files: &mut Vec<(String, Vec<u8>)>) -> ArmView<'a> {
    let arm_dir = run_dir.join(&arm.dir);
    let cites = Citations::of_arm(arm);
    let mut cuts = Vec::new();
    for (original, citers) in &cites.frames {
        let segment = original.trim_start_matches("wire/").trim_end_matches(".pcapng");
        let file = format!("{}-{segment}.pcapng", arm.arm);
        let wanted: BTreeSet<u64> = citers.keys().copied().collect();
        let result = read_limited(&arm_dir.join(original), TRACE_MAX)
            .and_then(|bytes| {
                cut::cut(&bytes, &wanted, CONTEXT_FRAMES, original).map_err(|e| format!("{original}: {e}"))
            })
            .map(|c| {
                files.push((file.clone(), c.bytes));
                CutDone {
                    frames: c.frames,
                    original_frames: c.original_frames,
                    missing: c.missing,
                }
            });
        cuts.push(CutView {
            original: original.clone(),
            file,
            citers: citers.clone(),
            result,
        });
    }
    let lines = cites
        .lines
        .iter()
        .map(|((file, line), citers)| LineExcerpt {
            file: file.clone(),
            line: *line,
            citers: citers.clone(),
            lines: read_limited(&arm_dir.join(file), TEXT_MAX).map(|b| excerpt(&b, *line, CONTEXT_LINES)),
        })
        .collect();
    let workload_start_unix = RunRecord::history(run_dir, arm)
        .iter()
        .find(|e| e.kind == EventKind::WorkloadStart)
        .map(|e| e.unix);
    ArmView {
        record: arm,
        cuts,
        lines,
        workload_start_unix,
    }
}

/// Lines `line - context ..= line + context` of `bytes` (1-based), as far as they exist.
pub fn excerpt(bytes: &[u8], line: u64, context: u64) -> Vec<(u64, String)> {
    let text = String::from_utf8_lossy(bytes);
    let first = line.saturating_sub(context).max(1);
    let last = line.saturating_add(context);
    text.lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .skip_while(|(n, _)| *n < first)
        .take_while(|(n, _)| *n <= last)
        .map(|(n, l)| (n, l.to_string()))
        .collect()
}

/// A file's bytes, refusing one bigger than `max`; the error names the file relative to the
/// arm (what the summary shows).
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {}", io_reason(&e)))?
        .len();
    if len > max {
        return Err(format!(
            "{shown} is {len} bytes, more than the {max} a bundle reads"
        ));
    }
    std::fs::read(path).map_err(|e| format!("{shown}: {}", io_reason(&e)))
}

/// An I/O error without the path the OS may add.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "missing".into(),
        io::ErrorKind::PermissionDenied => "not readable (permission denied)".into(),
        _ => e.kind().to_string(),
    }
}

/// `out/<base>/` holding `files`, written under a temporary name and renamed over any older
/// bundle.
fn write_dir(out: &Path, base: &str, files: &[(String, Vec<u8>)]) -> io::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .tempdir_in(out)?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    for (name, bytes) in files {
        crate::results::write_atomic(&tmp.path().join(name), bytes)?;
    }
    let dir = out.join(base);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(tmp.keep(), &dir)
}

/// `out/<base>.tar.gz` of `out/<base>/` by Debian's `tar`: names sorted, owners 0, every
/// time the run's start, so the archive carries no host user or clock.
fn write_archive(out: &Path, base: &str, started_unix: f64) -> io::Result<()> {
    let tmp = out.join(format!(".{base}.tar.gz.{}", std::process::id()));
    let mut cmd = crate::procs::tree("tar");
    cmd.arg("--create")
        .arg("--gzip")
        .arg("--sort=name")
        .arg("--owner=0")
        .arg("--group=0")
        .arg("--numeric-owner")
        .arg(format!("--mtime=@{}", started_unix.max(0.0) as u64))
        .arg("--file")
        .arg(&tmp)
        .arg("--directory")
        .arg(out)
        .arg(base)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut g = crate::procs::spawn_tree(&mut cmd)?;
    let status = match g.wait_for(TAR_LIMIT)? {
        Ok(s) => s,
        Err(_) => {
            g.terminate(Duration::from_secs(2));
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::other(format!("tar took longer than {TAR_LIMIT:?}")));
        }
    };
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::other(format!("tar failed ({status})")));
    }
    std::fs::rename(&tmp, out.join(format!("{base}.tar.gz")))
}

#[cfg(test)]
mod tests;
