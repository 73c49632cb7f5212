//! Scenario tests: every `case::arm` of `cases/*.toml` is a trial that runs the arm in real
//! QEMU guests and passes when the arm meets its expectation.
//!
//! Listing (`--list`, as cargo-nextest does) only parses case files: nothing boots and only
//! the list goes to stdout. A trial whose prerequisites are missing (no QEMU, an image not
//! built) is listed as ignored with the reason on stderr. A case file that does not validate
//! is one failing trial, `<file>::case-file`, with the `file:line:column` error.
//!
//! Results go to `results/test-<time>/` like any run (run.json, junit.xml, report.html),
//! rewritten after every arm. Arms run one at a time even when the test runner uses threads:
//! each fills both cores under TCG.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use faultline::{accel, case, hosttools, images, run, suite};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// The run folder all trials of this process share, made on the first trial that runs.
static RUN: OnceLock<Mutex<Option<suite::RunDir>>> = OnceLock::new();
/// One arm at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static ACCEL: OnceLock<accel::Decision> = OnceLock::new();

fn main() {
    let args = Arguments::from_args();
    let listing = args.list;
    let root = project_root();
    let cache = images::cache::default_root();
    let mut trials = Vec::new();
    let files = match suite::case_files(&[], &root.join(suite::CASES_DIR)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let recipes = images::load_recipes(&root.join("images"), &[]).map_err(|e| e.to_string());
    let qemu = hosttools::require(&[hosttools::QEMU_SYSTEM, hosttools::QEMU_IMG]).map_err(|e| e.to_string());
    for file in files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let case = match case::load(&file) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                trials.push(Trial::test(format!("{stem}::case-file"), move || Err(msg.into())));
                continue;
            }
        };
        let case = std::sync::Arc::new(case);
        for arm in &case.arms {
            let name = format!("{}::{}", case.name, arm.name);
            let ready = qemu.clone().and_then(|()| {
                let recipes = recipes.clone()?;
                run::arm_images(&case, arm, &recipes, &cache, false, &mut |_| {})
            });
            match ready {
                Ok(imgs) => {
                    let (case, arm, cache) = (case.clone(), arm.name.clone(), cache.clone());
                    trials.push(Trial::test(name, move || run_trial(&case, &arm, &imgs, &cache)));
                }
                Err(reason) => {
                    if !listing {
                        eprintln!("{name}: ignored: {reason}");
                    }
                    trials.push(
                        Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                            .with_ignored_flag(true),
                    );
                }
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run_trial(
    case: &case::Case,
    arm: &str,
    imgs: &std::collections::BTreeMap<String, images::Image>,
    cache: &Path,
) -> Result<(), Failed> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let arm = case.arm(arm).expect("the trial's arm exists");
    let decision = ACCEL.get_or_init(|| {
        let d = accel::decide(None, imgs.values().next().map(|i| i.kernel()).as_deref());
        eprintln!("accelerator: {} ({})", d.accel.as_str(), d.reason);
        d
    });
    let run_lock = RUN.get_or_init(|| Mutex::new(None));
    let mut run_dir = run_lock.lock().unwrap_or_else(|p| p.into_inner());
    if run_dir.is_none() {
        let rd = suite::RunDir::create(
            &project_root().join("results"),
            "test-",
            decision.accel,
            "cargo test --test cases".into(),
        )
        .map_err(|e| format!("creating the run folder: {e}"))?;
        *run_dir = Some(rd);
    }
    let rd = run_dir.as_mut().expect("just made");
    let mut versions = suite::versions(&imgs.values().collect::<Vec<_>>(), decision.accel);
    versions.append(&mut rd.record.versions);
    rd.record.versions = versions;
    let env = run::Env {
        cache_root: cache.to_path_buf(),
        accel: decision.accel,
        keep: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rerun = suite::rerun_command(case, Some(&arm.name), decision.accel);
    let result = rt.block_on(run::run_arm(&env, case, arm, imgs, &rd.dir, rerun, &mut |l| {
        eprintln!("  {l}")
    }));
    let r = result.record.clone();
    rd.add(result.record)
        .map_err(|e| format!("writing {}: {e}", rd.dir.display()))?;
    eprintln!(
        "  {}::{}: {} (expected {}), {:.1} s, {}",
        r.case,
        r.arm,
        r.verdict,
        r.expected,
        r.duration_s,
        rd.dir.join(&r.dir).display()
    );
    if r.met {
        Ok(())
    } else {
        Err(format!(
            "{} (expected {}): {}\n  results: {}\n  report: {}",
            r.verdict,
            r.expected,
            r.explanation,
            rd.dir.join(&r.dir).display(),
            rd.dir.join("report.html").display()
        )
        .into())
    }
}
