//! Scenario tests: every `case::arm` of `cases/*.toml` is a trial that runs the arm in real
//! QEMU guests and passes when the arm meets its expectation.
//!
//! Listing (`--list`, as cargo-nextest does) only parses case files: nothing boots and only
//! the list goes to stdout. A trial whose prerequisites are missing (no QEMU, an image not
//! built) is listed as ignored with the reason on stderr; in CI (`CI` set) or with
//! `FAULTLINE_REQUIRE_VMS=1` it fails instead, so a green run means the scenarios ran. A case file that does not validate
//! is one failing trial, `<file>::case-file`, with the `file:line:column` error.
//!
//! Results go to `results/test-<time>/` like any run (run.json, junit.xml, report.html),
//! rewritten after every arm. Arms run as many at once as the test runner has threads
//! (`--test-threads=N`, else `FAULTLINE_JOBS` as `--jobs` takes it, which `make test` sets,
//! else one), each in a lab of its own.

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

/// The run all trials of this process share, its folder made on the first trial that runs.
static RUN: OnceLock<Mutex<Option<suite::Runner>>> = OnceLock::new();
static ACCEL: OnceLock<accel::Decision> = OnceLock::new();

fn main() {
    let mut args = Arguments::from_args();
    let listing = args.list;
    // Arms at once: `--test-threads` when given, else FAULTLINE_JOBS (a number or `auto`),
    // else one (libtest's default, a thread per core, is not a choice anyone made).
    if args.test_threads.is_none() {
        args.test_threads = Some(match std::env::var("FAULTLINE_JOBS") {
            Ok(j) => match j.parse::<suite::Jobs>() {
                Ok(jobs) => jobs.here(),
                Err(e) => {
                    eprintln!("error: FAULTLINE_JOBS: {e}");
                    std::process::exit(2);
                }
            },
            Err(_) => 1,
        });
    }
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
    let require_vms = suite::vms_required_here();
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
                Err(reason) if require_vms => {
                    let why = format!("{reason} (VMs are required: {REQUIRED_BECAUSE})");
                    trials.push(Trial::test(name, move || Err(why.into())));
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

/// Why a trial that cannot boot fails instead of being ignored.
const REQUIRED_BECAUSE: &str = "CI or FAULTLINE_REQUIRE_VMS=1 is set, so a scenario that cannot run fails";

/// The trials' console: everything on stderr (stdout is libtest's).
struct Stderr;

impl faultline::console::Console for Stderr {
    fn out(&self, line: &str) {
        eprintln!("{line}");
    }
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

fn run_trial(
    case: &case::Case,
    arm: &str,
    imgs: &std::collections::BTreeMap<String, images::Image>,
    cache: &Path,
) -> Result<(), Failed> {
    let arm = case.arm(arm).expect("the trial's arm exists");
    let decision = ACCEL.get_or_init(|| suite::decide_accel(None, imgs.values().next(), &Stderr));
    let run_lock = RUN.get_or_init(|| Mutex::new(None));
    // The runner is held only to take a slot and to record: trials on other test threads
    // (`--test-threads=N`) run their arms at the same time, each in a lab of its own.
    let slot = {
        let mut runner = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        if runner.is_none() {
            let r = suite::Runner::create(
                &project_root().join("results"),
                "test-",
                decision.accel,
                cache.to_path_buf(),
                "cargo test --test cases".into(),
            )
            .map_err(|e| format!("creating the run folder: {e}"))?;
            *runner = Some(r);
        }
        let runner = runner.as_mut().expect("just made");
        runner.add_versions(&imgs.values().collect::<Vec<_>>());
        runner.slot()
    };
    // No signal stops a trial: SIGINT ends the test binary as it would any, and the guests
    // die with it (procs::spawn's parent-death signal).
    let never = std::future::pending::<&'static str>();
    let name = format!("{}::{}", case.name, arm.name);
    let ran = suite::runtime()
        .block_on(slot.run(
            case,
            arm,
            &suite::Variant::default(),
            imgs,
            false,
            never,
            &mut |l| eprintln!("  {name}: {l}"),
        ))
        .unwrap_or_else(|_| unreachable!("only a signal interrupts an arm, and a trial waits for none"));
    let r = ran.record.clone();
    let mut runner = run_lock.lock().unwrap_or_else(|p| p.into_inner());
    let runner = runner.as_mut().expect("made above");
    runner.record(ran).map_err(|e| e.to_string())?;
    let rd = &runner.run_dir;
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
