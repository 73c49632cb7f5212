//! Which arms a run takes: case files from names and folders, then `--arm` and
//! `--partition K/N`. Pure apart from reading the case files.

use std::path::{Path, PathBuf};

use crate::case::{self, Arm, Case, CaseError};

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

/// Whether `--arm`'s `want` names `arm`: its name, or for a size of a sweep
/// (`cascade@x2`) also the case's arm it is a size of (`cascade`: every size).
pub fn arm_matches(arm: &Arm, want: &str) -> bool {
    arm.name == want || arm.sweep.as_ref().is_some_and(|s| s.arm == want)
}

/// The (case index, arm name) pairs to run, in file order: only the arms named in `arm` (a
/// comma list, see [`arm_matches`]) if given, then only this partition's share (round robin
/// over the selected arms).
pub fn select(cases: &[Case], arm: Option<&str>, partition: Option<Partition>) -> Vec<(usize, String)> {
    let all: Vec<(usize, String)> = cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.arms
                .iter()
                .filter(|a| arm.is_none_or(|want| want.split(',').any(|w| arm_matches(a, w))))
                .map(move |a| (i, a.name.clone()))
        })
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
