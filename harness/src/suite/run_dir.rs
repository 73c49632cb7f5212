//! The run folder being filled (`run.json`, `junit.xml`, `report.html` after every arm;
//! `results/latest`), the versions that ran, and the commands that run it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::case::Case;
use crate::images::Image;
use crate::results::{self, ArmRecord, RunRecord};

use super::Partition;

/// The command that runs one arm (or, with `arm` `None`, the case) again.
pub fn rerun_command(case: &Case, arm: Option<&str>, accel: Accel) -> String {
    rerun_selection(&[case.file.display().to_string()], arm, None, accel)
}

/// The command that runs a selection again: the case names, files or folders as given, the
/// arm and partition, and the accelerator that was decided (a run's `rerun`).
pub fn rerun_selection(
    cases: &[String],
    arm: Option<&str>,
    partition: Option<Partition>,
    accel: Accel,
) -> String {
    let mut cmd = String::from("faultline run");
    for c in cases {
        cmd.push(' ');
        cmd.push_str(c);
    }
    if let Some(a) = arm {
        cmd.push_str(&format!(" --arm {a}"));
    }
    if let Some(p) = partition {
        cmd.push_str(&format!(" --partition {}/{}", p.k, p.n));
    }
    cmd.push_str(&format!(" --accel {}", accel.as_str()));
    cmd
}

/// What ran: the harness, QEMU (and `nic` when labs link by TCP loopback), and each image's
/// kernel, recipe hash, patches (a source variant) and the packages the incident is about.
pub fn versions(images: &[&Image], accel: Accel) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("faultline".into(), env!("CARGO_PKG_VERSION").into());
    v.insert("qemu".into(), crate::qemu::saved::qemu_version());
    v.insert("accel".into(), accel.as_str().into());
    // Only the fallback is named: runs on the usual `-netdev stream` keep their versions as
    // they were.
    if let Ok(link @ crate::qemu::link::Link::Socket) = crate::qemu::link::host() {
        v.insert("nic".into(), link.name().into());
    }
    for img in images {
        let m = &img.manifest;
        v.insert(format!("{}.kernel", m.name), m.kernel_release.clone());
        v.insert(format!("{}.recipe", m.name), m.recipe_hash.clone());
        // A source variant's version is the source's, the same for every variant of it: its
        // patches tell them apart.
        if let Some(src) = &m.source {
            let names: Vec<&str> = src.patches.iter().map(|p| p.name.as_str()).collect();
            let patches = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            v.insert(format!("{}.patches", m.name), patches);
        }
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
    /// The cases whose sweeps this run runs (`run --sweep`): their `sweeps` entries are made
    /// again from the arms after every arm.
    pub sweep_cases: Vec<Case>,
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
            merged: None,
            images: Vec::new(),
            variants: None,
            sweeps: Vec::new(),
        };
        let rd = RunDir {
            dir,
            record,
            sweep_cases: Vec::new(),
        };
        rd.record.write(&rd.dir)?;
        Ok(rd)
    }

    /// Add an arm (replacing an earlier record of the same case::arm) and rewrite the files.
    pub fn add(&mut self, arm: ArmRecord) -> std::io::Result<()> {
        self.record
            .arms
            .retain(|a| !(a.case == arm.case && a.arm == arm.arm));
        self.record.arms.push(arm);
        self.tables();
        self.record.write(&self.dir)
    }

    /// List the arms named in `order` in that order (arms ended in parallel are recorded as
    /// they end), after any others, and rewrite the files.
    pub fn order_by(&mut self, order: &[(&str, &str)]) -> std::io::Result<()> {
        let rank = |a: &ArmRecord| {
            order
                .iter()
                .position(|(c, n)| a.case == *c && a.arm == *n)
                .map_or((0, 0), |p| (1, p))
        };
        self.record.arms.sort_by_key(rank);
        self.tables();
        self.record.write(&self.dir)
    }

    /// The run's tables made from its arms: image variants, sweeps.
    fn tables(&mut self) {
        self.record.variants = results::variants::table(&self.record.arms);
        self.record.sweeps = results::sweep::records(&self.sweep_cases, &self.record.arms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_run_again_as_it_was_asked_for() {
        let names = ["smoke".to_string(), "cases/wip".to_string()];
        let p = Partition { k: 1, n: 2 };
        assert_eq!(
            rerun_selection(&names, Some("baseline"), Some(p), Accel::Tcg),
            "faultline run smoke cases/wip --arm baseline --partition 1/2 --accel tcg"
        );
        assert_eq!(
            rerun_selection(&[], None, None, Accel::Kvm),
            "faultline run --accel kvm"
        );
    }

    #[test]
    fn an_arm_is_run_again_from_its_case_file() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
        let case = crate::case::load(&file).unwrap();
        assert_eq!(
            rerun_command(&case, Some("baseline"), Accel::Tcg),
            format!("faultline run {} --arm baseline --accel tcg", file.display())
        );
    }

    #[test]
    fn arms_that_ended_out_of_order_are_listed_in_selection_order() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
        let case = crate::case::load(&file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut rd = RunDir::create(dir.path(), "t-", Accel::Tcg, "x".into()).unwrap();
        for arm in ["broken", "baseline"] {
            let arm = case.arm(arm).unwrap();
            rd.add(crate::run::unfinished(&case, arm, "r".into())).unwrap();
        }
        rd.order_by(&[("smoke", "baseline"), ("smoke", "broken")])
            .unwrap();
        let on_disk = RunRecord::load(&rd.dir).unwrap();
        let arms: Vec<&str> = on_disk.arms.iter().map(|a| a.arm.as_str()).collect();
        assert_eq!(arms, ["baseline", "broken"]);
    }

    #[test]
    fn the_sweeps_are_made_again_after_every_arm_and_absent_without_one() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/case/testdata/sweep-storm.toml");
        let case = crate::case::load(&file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut rd = RunDir::create(dir.path(), "t-", Accel::Tcg, "x".into()).unwrap();
        rd.sweep_cases = vec![case.clone()];
        let arms = crate::results::sweep::tests::sized_arms(&case);
        rd.add(arms[2].clone()).unwrap();
        let on_disk = RunRecord::load(&rd.dir).unwrap();
        assert_eq!(on_disk.sweeps.len(), 1);
        assert_eq!(on_disk.sweeps[0].measured.len(), 1, "partial results are written");
        rd.add(arms[0].clone()).unwrap();
        rd.order_by(&[("sweep-storm", "storm@x1"), ("sweep-storm", "storm@x3.5")])
            .unwrap();
        let on_disk = RunRecord::load(&rd.dir).unwrap();
        let sizes: Vec<&str> = on_disk.sweeps[0]
            .measured
            .iter()
            .map(|s| s.arm.as_str())
            .collect();
        assert_eq!(sizes, ["storm@x1", "storm@x3.5"]);
        let page = std::fs::read_to_string(rd.dir.join("report.html")).unwrap();
        assert!(page.contains("Sweep: sweep-storm::storm"));

        // A run that sweeps nothing writes no `sweeps`.
        let mut plain = RunDir::create(dir.path(), "t-", Accel::Tcg, "x".into()).unwrap();
        plain.add(arms[0].clone()).unwrap();
        let json = std::fs::read_to_string(plain.dir.join("run.json")).unwrap();
        assert!(!json.contains("\"sweeps\""), "{json}");
    }
}
