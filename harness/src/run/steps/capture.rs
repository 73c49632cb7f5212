//! Capture steps (`capture = { command, files }`): evidence taken in the middle of the
//! workload — index state between two sessions — into `evidence/steps/<step>/`.
//!
//! Invariants: the globs are expanded by the guest's shell, so the case model lets through
//! only path characters and `*`/`?`; every file is size-checked before it is read, and none
//! is read past [`CAPTURE_MAX`] whatever its `stat` said (the guest's answer, and a file can
//! grow): a copy cut there is kept and named as truncated, which fails the step; the
//! command's output takes its name (`command.out`) before any file is copied.

use std::time::Duration;

use crate::case::Step;
use crate::run::context::{Ctx, State};
use crate::run::record::{snippet, StepOutcome};
use crate::run::steps::{begin, finish, outcome_of, ProcKind, StepEnd};

/// Run a capture step on `guest`: its command (if any), then the copies.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    st: &State,
    step: &Step,
    guest: &str,
    command: Option<&str>,
    files: &[String],
    timeout: Duration,
) {
    let g = guest;
    let detail = match command {
        Some(c) => snippet(c, 200),
        None => format!("copy {}", files.join(" ")),
    };
    let t = begin(ctx, st, step, detail);
    let limit = ctx.accel.scale(timeout);
    let (mut outcome, code, out, err, truncated) = match command {
        None => (StepOutcome::Ok, None, String::new(), String::new(), false),
        Some(c) => {
            let result = ctx.guests.exec(g, c, limit).await;
            let truncated = result.as_ref().is_ok_and(|o| o.truncated);
            let (outcome, code, out, err) = outcome_of(result, 0, ProcKind::Exec);
            (outcome, code, out, err, truncated)
        }
    };
    let rel_dir = format!("evidence/steps/{}", step.name);
    let _ = std::fs::create_dir_all(ctx.dir.join(&rel_dir));
    let mut copied = Vec::new();
    if command.is_some() {
        // The command's output is evidence too (a `doveadm dump` of 2,000 records
        // is read in a file, not in steps.json). Its name is then taken.
        let rel = format!("{rel_dir}/command.out");
        if std::fs::write(ctx.dir.join(&rel), &out).is_ok() {
            copied.push(rel);
        }
    }
    let problems = copy_files(ctx, g, &rel_dir, files, limit, &mut copied).await;
    if !problems.is_empty() && outcome == StepOutcome::Ok {
        outcome = StepOutcome::Failed(snippet(&problems.join("; "), 300));
    }
    st.update(&step.name, |r| {
        r.files = copied;
        r.truncated = truncated;
    });
    let end = StepEnd {
        outcome,
        exit_code: code,
        output: out,
        stderr: err,
        duration: None,
    };
    finish(ctx, st, step, t, end);
}

/// The most bytes a capture step copies of one guest file: the guest controls what is there.
const CAPTURE_MAX: u64 = 64 << 20;

/// What is wrong with a copy of `path` of which `read` was read, if anything.
fn truncation(path: &str, read: &crate::qemu::agent::FileRead) -> Option<String> {
    read.truncated.then(|| {
        format!(
            "{path}: truncated: only its first {} MiB were copied (it grew past its stat, or the guest said less)",
            CAPTURE_MAX >> 20
        )
    })
}

/// Copy every regular file matching `patterns` out of the guest into `<rel_dir>/<file name>`
/// (`rel_dir` relative to the arm's folder, already made), adding each copy to `copied`
/// (whose names are taken); returns what could not be copied. A pattern matching nothing is
/// not a problem: "no index yet" is state.
async fn copy_files(
    ctx: &Ctx<'_>,
    guest: &str,
    rel_dir: &str,
    patterns: &[String],
    limit: Duration,
    copied: &mut Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if patterns.is_empty() {
        return problems;
    }
    // The patterns are checked to hold no shell syntax but globs (case::resolve), so they go
    // unquoted for the shell to expand. Sizes first: a huge file is refused, not read.
    let script = format!(
        "for f in {}; do [ -f \"$f\" ] && printf '%s %s\\n' \"$(stat -c %s -- \"$f\")\" \"$f\"; done; true",
        patterns.join(" ")
    );
    let listing = match ctx.guests.exec(guest, &script, limit).await {
        Ok(o) => o.stdout,
        Err(e) => {
            problems.push(format!("listing {}: {e}", patterns.join(" ")));
            return problems;
        }
    };
    for line in listing.lines() {
        let Some((size, path)) = line.split_once(' ') else {
            continue;
        };
        let base = std::path::Path::new(path)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        if base.is_empty() || copied.iter().any(|c: &String| c.ends_with(&format!("/{base}"))) {
            problems.push(format!("{path}: a second file named {base:?}"));
            continue;
        }
        if size.parse::<u64>().map_or(true, |n| n > CAPTURE_MAX) {
            problems.push(format!(
                "{path}: {size} bytes, more than the {} MiB a capture copies",
                CAPTURE_MAX >> 20
            ));
            continue;
        }
        match ctx
            .guests
            .read_file_upto(guest, path, CAPTURE_MAX as usize, limit)
            .await
        {
            Ok(read) => {
                let rel = format!("{rel_dir}/{base}");
                match std::fs::write(ctx.dir.join(&rel), &read.data) {
                    Ok(()) => copied.push(rel),
                    Err(e) => problems.push(format!("writing {rel}: {e}")),
                }
                problems.extend(truncation(path, &read));
            }
            Err(e) => problems.push(format!("{path}: {e}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::agent::FileRead;

    #[test]
    fn a_copy_cut_at_the_cap_is_a_problem_whatever_stat_said() {
        let cut = FileRead {
            data: vec![0; CAPTURE_MAX as usize],
            truncated: true,
        };
        let p = truncation("/var/mail/x/dovecot.index", &cut).expect("a truncated copy is named");
        assert!(p.contains("truncated") && p.contains("64 MiB"), "{p}");
        let whole = FileRead {
            data: vec![0; 10],
            truncated: false,
        };
        assert_eq!(truncation("/x", &whole), None);
    }
}
