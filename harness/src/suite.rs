//! A run of several arms: which cases and arms (selection, partitions), the run folder, the
//! versions and re-run commands, and `run.json` rewritten after every arm. Shared by
//! `faultline run` and the `cases` test binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::case::{self, Case, CaseError};
use crate::images::Image;
use crate::results::{self, ArmRecord, RunRecord};

/// Where case files live in the project.
pub const CASES_DIR: &str = "cases";

/// Cases named on the command line: files, folders of `*.toml` (sorted), or bare names
/// looked up as `<cases_dir>/<name>.toml`. No names: every case in `cases_dir`.
pub fn case_files(names: &[String], cases_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let targets: Vec<PathBuf> = if names.is_empty() {
        vec![cases_dir.to_path_buf()]
    } else {
        names
            .iter()
            .map(|n| {
                let p = PathBuf::from(n);
                if p.exists() || n.contains('/') || n.ends_with(".toml") {
                    p
                } else {
                    cases_dir.join(format!("{n}.toml"))
                }
            })
            .collect()
    };
    for t in targets {
        if t.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&t)
                .map_err(|e| format!("{}: {e}", t.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            out.extend(found);
        } else if t.is_file() {
            out.push(t);
        } else {
            return Err(format!("{}: no such case file", t.display()));
        }
    }
    Ok(out)
}

/// Load every file; the first invalid one is the error.
pub fn load_cases(files: &[PathBuf]) -> Result<Vec<Case>, CaseError> {
    files.iter().map(|f| case::load(f)).collect()
}

/// `K/N`: the K-th of N slices (1-based), as cargo-nextest counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: a partition is K/N, e.g. 1/2"))?;
        let (k, n): (usize, usize) = (
            k.parse().map_err(|_| format!("`{s}`: K is not a number"))?,
            n.parse().map_err(|_| format!("`{s}`: N is not a number"))?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(format!("`{s}`: need 1 <= K <= N"));
        }
        Ok(Partition { k, n })
    }
}

/// The (case index, arm name) pairs to run, in file order: only `arm` if given, then only
/// this partition's share (round robin over the selected arms).
pub fn select(cases: &[Case], arm: Option<&str>, partition: Option<Partition>) -> Vec<(usize, String)> {
    let all: Vec<(usize, String)> = cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.arms.iter().map(move |a| (i, a.name.clone())))
        .filter(|(_, a)| arm.is_none_or(|want| want == a))
        .collect();
    match partition {
        None => all,
        Some(p) => all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % p.n == p.k - 1)
            .map(|(_, x)| x)
            .collect(),
    }
}

/// The command that runs one arm (or, with `arm` `None`, the case) again.
pub fn rerun_command(case: &Case, arm: Option<&str>, accel: Accel) -> String {
    let mut cmd = format!("faultline run {}", case.file.display());
    if let Some(a) = arm {
        cmd.push_str(&format!(" --arm {a}"));
    }
    cmd.push_str(&format!(" --accel {}", accel.as_str()));
    cmd
}

/// What ran: the harness, QEMU, and each image's kernel and the packages the incident is
/// about.
pub fn versions(images: &[&Image], accel: Accel) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("faultline".into(), env!("CARGO_PKG_VERSION").into());
    v.insert("qemu".into(), crate::qemu::saved::qemu_version());
    v.insert("accel".into(), accel.as_str().into());
    for img in images {
        let m = &img.manifest;
        v.insert(format!("{}.kernel", m.name), m.kernel_release.clone());
        v.insert(format!("{}.recipe", m.name), m.recipe_hash.clone());
        for p in [
            "nfs-common",
            "nfs-kernel-server",
            "dovecot-core",
            "qemu-guest-agent",
        ] {
            if let Some(ver) = m.packages.get(p) {
                v.insert(format!("{}.{p}", m.name), ver.clone());
            }
        }
    }
    v
}

/// A run folder being filled: `run.json`, `junit.xml` and `report.html` are rewritten after
/// every arm, and `latest` points at it from the start.
pub struct RunDir {
    pub dir: PathBuf,
    pub record: RunRecord,
}

impl RunDir {
    pub fn create(results: &Path, prefix: &str, accel: Accel, rerun: String) -> std::io::Result<RunDir> {
        std::fs::create_dir_all(results)?;
        let id = results::new_run_id(prefix);
        let dir = results.join(&id);
        std::fs::create_dir(&dir)?;
        let _ = results::link_latest(results, &dir);
        let record = RunRecord {
            run_id: id,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            accel: accel.as_str().into(),
            arms: Vec::new(),
            versions: BTreeMap::new(),
            rerun,
        };
        let rd = RunDir { dir, record };
        rd.record.write(&rd.dir)?;
        Ok(rd)
    }

    /// Add an arm (replacing an earlier record of the same case::arm) and rewrite the files.
    pub fn add(&mut self, arm: ArmRecord) -> std::io::Result<()> {
        self.record
            .arms
            .retain(|a| !(a.case == arm.case && a.arm == arm.arm));
        self.record.arms.push(arm);
        self.record.write(&self.dir)
    }
}
