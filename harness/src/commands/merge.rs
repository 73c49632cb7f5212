//! `faultline merge DIR…`: the run folders of several shards or reruns made one run folder:
//! `run.json` (with its `merged` section), `junit.xml` and `report.html` from the existing
//! writers, and each kept arm's folder hard-linked from its source (copied where a hard link
//! cannot be made), so the merged folder stands on its own when the sources are moved.
//!
//! Architecture invariant: the merge itself is [`crate::results::merge`] (pure); this file
//! only reads the sources, links or copies files and writes the result. The merged folder is
//! built under a temporary name beside its destination and renamed into place last: it is
//! complete or absent.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::results::merge::{self, Source};
use crate::results::{self, RunRecord};

/// What `faultline merge` was asked for.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The run folders to merge.
    pub dirs: Vec<PathBuf>,
    /// The merged folder itself (must not exist, or be empty).
    pub out: Option<PathBuf>,
    /// Otherwise: a new `<results>/merged-<time>/`, and `latest` pointed at it.
    pub results: PathBuf,
}

/// `faultline merge`: exit 0 when every arm of the merged run met its expectation, 1 when one
/// did not, 2 for a source that is not a run folder.
pub fn merge(o: &MergeOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let sources = o.dirs.iter().map(|d| load(d)).collect::<Result<Vec<_>, _>>()?;
    let run_id = results::new_run_id("merged-");
    let dest = match &o.out {
        Some(out) => {
            let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none());
            if out.exists() && !matches!(empty, Ok(true)) {
                return Err(CommandError::Input(format!(
                    "{}: exists and is not an empty folder",
                    out.display()
                )));
            }
            out.clone()
        }
        None => o.results.join(&run_id),
    };
    let merged = merge::merge(&run_id, &sources);
    let found = merged
        .record
        .merged
        .as_ref()
        .expect("a merge records its sources");
    for line in found.notices() {
        console.note(&format!("merge: {line}"));
    }
    let copied = write(&merged, &o.dirs, &dest, console)
        .map_err(|e| CommandError::Broken(format!("writing {}: {e}", dest.display())))?;
    if o.out.is_none() {
        let _ = results::link_latest(&o.results, &dest);
    }
    let arms = &merged.record.arms;
    let met = arms.iter().filter(|a| a.met).count();
    console.note(&format!(
        "arm folders: {} files hard-linked, {} copied",
        copied.linked, copied.copied
    ));
    console.out(&format!(
        "merged {} runs: {met} of {} arms met their expectation{}; report: {}",
        sources.len(),
        arms.len(),
        if found.notices().is_empty() {
            String::new()
        } else {
            format!(
                " ({} duplicates, {} version mismatches: see the report)",
                found.duplicates.len(),
                found.mismatches.len()
            )
        },
        dest.join("report.html").display()
    ));
    Ok(if met == arms.len() { Exit::Ok } else { Exit::Failed })
}

/// A source: its `run.json`, named by its folder's own name (never a host path). An arm
/// folder that would lead out of the run folder is bad input, like an unreadable file.
fn load(dir: &Path) -> Result<Source, CommandError> {
    let file = dir.join("run.json");
    let record = RunRecord::load(dir).map_err(|e| CommandError::Input(format!("{}: {e}", file.display())))?;
    if let Some(arm) = record.arms.iter().find(|a| !inside(&a.dir)) {
        return Err(CommandError::Input(format!(
            "{}: arm {}::{} has folder `{}`, which is not inside the run",
            file.display(),
            arm.case,
            arm.arm,
            arm.dir
        )));
    }
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Source { name, record })
}

/// A relative path of plain names.
fn inside(dir: &str) -> bool {
    !dir.is_empty()
        && Path::new(dir)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[derive(Debug, Default)]
struct Copied {
    linked: usize,
    copied: usize,
}

/// Build the merged folder beside `dest` and rename it into place.
fn write(merged: &merge::Merged, dirs: &[PathBuf], dest: &Path, console: &dyn Console) -> io::Result<Copied> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let name = dest
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the destination has no name"))?;
    let tmp = parent.join(format!(
        ".{}.merging-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp)?;
    let built = (|| {
        let mut copied = Copied::default();
        for (arm, &origin) in merged.record.arms.iter().zip(&merged.origins) {
            let from = dirs[origin].join(&arm.dir);
            if !from.is_dir() {
                console.note(&format!(
                    "merge: {}::{}: its source has no folder {} (only its record is merged)",
                    arm.case,
                    arm.arm,
                    from.display()
                ));
                continue;
            }
            let to = tmp.join(&arm.dir);
            std::fs::create_dir_all(to.parent().expect("an arm folder is inside the run"))?;
            link_tree(&from, &to, &mut copied)?;
        }
        merged.record.write(&tmp)?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::fs::rename(&tmp, dest)?;
        Ok(copied)
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    built
}

/// `from`'s tree at `to`: folders made, files hard-linked (copied when the file system will
/// not link them, e.g. across devices), symbolic links made again as they read.
fn link_tree(from: &Path, to: &Path, n: &mut Copied) -> io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&src, &dst, n)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_ok() {
            n.linked += 1;
        } else {
            std::fs::copy(&src, &dst)?;
            n.copied += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arm_folder_must_stay_inside_its_run() {
        assert!(inside("smoke/baseline"));
        assert!(!inside("../smoke/baseline"));
        assert!(!inside("/etc"));
        assert!(!inside("smoke/../../x"));
        assert!(!inside(""));
    }
}
