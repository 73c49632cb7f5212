//! The arms of one run, one after another, into one run folder: what `faultline run` loops
//! over and what each trial of the `cases` test binary takes a turn of.
//!
//! Architecture invariants:
//! - The accelerator, the cache and the run folder are decided before the first arm and are
//!   the same for every arm of the run.
//! - An arm stopped by a signal is recorded (`error`, "interrupted by SIGINT before the arm
//!   finished") before the caller hears of it; its lab is dropped with the arm, so no QEMU is
//!   left.
//! - The exit code is counted here from every recorded arm: a broken lab (3) outweighs an
//!   unmet expectation (1).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::accel::{self, Accel, Decision};
use crate::case::{Arm, Case};
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images::Image;
use crate::lab::Lab;
use crate::results::ArmRecord;
use crate::run::{self, ArmRun};

use super::overrides::Variant;
use super::{rerun_command, versions, RunDir};

/// Whether a VM trial whose prerequisites are missing (no QEMU, an image not built) fails
/// instead of being ignored: in CI (`CI` set to anything but empty, `false` or `0`) or when
/// `FAULTLINE_REQUIRE_VMS=1`. A green `cargo test` there must mean the scenarios ran.
pub fn vms_required(ci: Option<&str>, require_vms: Option<&str>) -> bool {
    let ci = ci.is_some_and(|v| !matches!(v.trim(), "" | "false" | "0"));
    ci || require_vms.is_some_and(|v| v.trim() == "1")
}

/// [`vms_required`] for this process's environment.
pub fn vms_required_here() -> bool {
    let var = |k: &str| std::env::var(k).ok();
    vms_required(var("CI").as_deref(), var("FAULTLINE_REQUIRE_VMS").as_deref())
}

/// Decide the accelerator (a probe boot of `probe`'s kernel unless `forced`) and say which.
pub fn decide_accel(forced: Option<Accel>, probe: Option<&Image>, console: &dyn Console) -> Decision {
    let decision = accel::decide(forced, probe.map(|i| i.kernel()).as_deref());
    console.note(&format!(
        "accelerator: {} ({})",
        decision.accel.as_str(),
        decision.reason
    ));
    decision
}

/// The runtime a command's guests run on (one thread: each guest is a QEMU process anyway).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// SIGINT or SIGTERM; returns its name.
pub async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// An arm stopped by a signal (its name); it is already recorded as interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted(pub &'static str);

/// One arm of a parallel run: its case, the arm, the variant (`--image`) and the images its
/// guests run.
#[derive(Clone, Copy)]
pub struct Turn<'a> {
    pub case: &'a Case,
    pub arm: &'a Arm,
    pub variant: &'a Variant,
    pub images: &'a BTreeMap<String, Image>,
    /// How long the arm took last time, if known: the longest start first, so a long arm
    /// does not start last and run alone at the end.
    pub expected_s: Option<f64>,
}

/// The order arms start in: longest expected first, unknown ones (which may be long) before
/// all, ties in selection order.
pub fn start_order(turns: &[Turn<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..turns.len()).collect();
    let key = |i: &usize| turns[*i].expected_s.unwrap_or(f64::INFINITY);
    order.sort_by(|a, b| key(b).total_cmp(&key(a)));
    order
}

/// An arm a signal stopped: the signal and the arm's record saying so.
pub struct Stopped {
    pub signal: &'static str,
    pub record: ArmRecord,
}

/// What crosses from a worker thread: an arm's lab stays (and dies) on the thread that
/// started it.
struct Ended {
    record: ArmRecord,
    lab_broke: bool,
}

/// What an arm needs to run apart from the runner: the run's environment and folder.
#[derive(Clone)]
pub struct ArmSlot {
    env: run::Env,
    dir: PathBuf,
}

impl ArmSlot {
    /// Run one arm (as `variant` asks: its record named for the variant, `--image` in its
    /// rerun command) until its verdict or until `stop` returns a signal's name (then the
    /// record that says the arm was interrupted, for the runner to keep).
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        case: &Case,
        arm: &Arm,
        variant: &Variant,
        images: &BTreeMap<String, Image>,
        keep: bool,
        stop: impl Future<Output = &'static str>,
        say: &mut dyn FnMut(&str),
    ) -> Result<ArmRun, Stopped> {
        let env = run::Env {
            keep,
            ..self.env.clone()
        };
        let mut rerun = rerun_command(case, Some(&arm.name), env.accel) + &variant.rerun_args();
        if arm.sweep.is_some() {
            rerun.push_str(" --sweep");
        }
        let label = variant.label.as_deref();
        tokio::select! {
            r = run::run_arm(&env, case, arm, label, images, &self.dir, rerun.clone(), say) => Ok(r),
            signal = stop => Err(Stopped {
                signal,
                record: ArmRecord {
                    explanation: format!("interrupted by {signal} before the arm finished"),
                    ..run::on_images(run::unfinished(case, arm, rerun), label, images)
                },
            }),
        }
    }
}

/// A run under way: its folder, what every arm shares, and the counts for the exit code.
pub struct Runner {
    env: run::Env,
    pub run_dir: RunDir,
    /// Arms recorded that did not meet their expectation.
    pub unmet: usize,
    /// An arm's lab could not be started or broke.
    pub broke: bool,
}

impl Runner {
    /// A new run folder `<results>/<prefix><time>/` (and `latest`), recording `rerun`.
    pub fn create(
        results: &Path,
        prefix: &str,
        accel: Accel,
        cache_root: PathBuf,
        rerun: String,
    ) -> std::io::Result<Runner> {
        Ok(Runner {
            env: run::Env {
                cache_root,
                accel,
                keep: false,
            },
            run_dir: RunDir::create(results, prefix, accel, rerun)?,
            unmet: 0,
            broke: false,
        })
    }

    pub fn accel(&self) -> Accel {
        self.env.accel
    }

    /// Add what `images` are to the run's versions (those already recorded stay).
    pub fn add_versions(&mut self, images: &[&Image]) {
        let mut v: BTreeMap<String, String> = versions(images, self.env.accel);
        v.append(&mut self.run_dir.record.versions);
        self.run_dir.record.versions = v;
    }

    /// What an arm needs to run without holding the runner: for arms run on other threads
    /// while the runner records the ones that ended.
    pub fn slot(&self) -> ArmSlot {
        ArmSlot {
            env: self.env.clone(),
            dir: self.run_dir.dir.clone(),
        }
    }

    /// Run one arm until its verdict or until `stop` returns a signal's name. `keep` keeps
    /// its lab up afterwards (in [`ArmRun::kept`]). An arm that ran is recorded by
    /// [`Runner::record`]; an interrupted one is recorded here.
    #[allow(clippy::too_many_arguments)]
    pub async fn arm(
        &mut self,
        case: &Case,
        arm: &Arm,
        variant: &Variant,
        images: &BTreeMap<String, Image>,
        keep: bool,
        stop: impl Future<Output = &'static str>,
        say: &mut dyn FnMut(&str),
    ) -> Result<ArmRun, Interrupted> {
        match self.slot().run(case, arm, variant, images, keep, stop, say).await {
            Ok(r) => Ok(r),
            Err(stopped) => {
                let signal = stopped.signal;
                self.record_interrupted(stopped);
                Err(Interrupted(signal))
            }
        }
    }

    /// Record an arm a signal stopped (best effort: the run is ending).
    pub fn record_interrupted(&mut self, stopped: Stopped) {
        let _ = self.run_dir.add(stopped.record);
    }

    /// Run `turns` with up to `jobs` arms at once, each on a thread of its own with its own
    /// runtime and lab (own sockets, overlays and switch), and record each as it ends;
    /// `say` hears an arm's progress (with its index in `turns`) from its thread, `done`
    /// each recorded arm on this thread. SIGINT or SIGTERM stops the arms under way (each
    /// recorded as interrupted) and starts no more: the signal's name is returned. The run's
    /// files list the arms in `turns` order whatever order they ended in.
    pub fn run_parallel(
        &mut self,
        turns: &[Turn<'_>],
        jobs: usize,
        say: &(dyn Fn(usize, &str) + Sync),
        done: &mut dyn FnMut(usize, &ArmRecord),
    ) -> Result<Option<&'static str>, CommandError> {
        let jobs = jobs.clamp(1, turns.len().max(1));
        let order = start_order(turns);
        let next = AtomicUsize::new(0);
        let (stop_tx, stop_rx) = watch::channel::<Option<&'static str>>(None);
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<Ended, Stopped>)>();
        let slot = self.slot();
        let mut interrupted = None;
        let mut failed = None;
        std::thread::scope(|s| {
            for w in 0..jobs {
                let (tx, stop_rx, next, slot, order) = (tx.clone(), stop_rx.clone(), &next, &slot, &order);
                let worker = move || {
                    // The guests' parent-death signal is tied to this thread, which lives
                    // until its last arm's lab is gone.
                    let rt = runtime();
                    loop {
                        if stop_rx.borrow().is_some() {
                            break;
                        }
                        let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        let t = &turns[i];
                        let mut stop = stop_rx.clone();
                        let stopped = async move {
                            match stop.wait_for(Option::is_some).await {
                                Ok(s) => s.unwrap_or("SIGTERM"),
                                Err(_) => std::future::pending().await,
                            }
                        };
                        say(i, &format!("{}::{}", t.case.name, t.variant.arm_id(&t.arm.name)));
                        let mut line = |l: &str| say(i, l);
                        let ended = rt
                            .block_on(slot.run(t.case, t.arm, t.variant, t.images, false, stopped, &mut line))
                            .map(|r| Ended {
                                record: r.record,
                                lab_broke: r.lab_broke,
                            });
                        if tx.send((i, ended)).is_err() {
                            break;
                        }
                    }
                };
                std::thread::Builder::new()
                    .name(format!("arm-worker-{w}"))
                    .spawn_scoped(s, worker)
                    .expect("spawning an arm worker thread");
            }
            drop(tx);
            runtime().block_on(async {
                let mut signal = std::pin::pin!(stop_signal());
                loop {
                    tokio::select! {
                        m = rx.recv() => match m {
                            None => break,
                            Some((i, Ok(ended))) => {
                                let record = ended.record.clone();
                                let ran = ArmRun { record: ended.record, lab_broke: ended.lab_broke, kept: None };
                                if let Err(e) = self.record(ran) {
                                    failed.get_or_insert(e);
                                }
                                done(i, &record);
                            }
                            Some((_, Err(stopped))) => self.record_interrupted(stopped),
                        },
                        s = &mut signal, if interrupted.is_none() => {
                            interrupted = Some(s);
                            let _ = stop_tx.send(Some(s));
                        }
                    }
                }
            });
        });
        let ids: Vec<String> = turns.iter().map(|t| t.variant.arm_id(&t.arm.name)).collect();
        let keys: Vec<(&str, &str)> = turns
            .iter()
            .zip(&ids)
            .map(|(t, id)| (t.case.name.as_str(), id.as_str()))
            .collect();
        self.run_dir.order_by(&keys).map_err(|e| self.write_error(e))?;
        match failed {
            Some(e) => Err(e),
            None => Ok(interrupted),
        }
    }

    /// Count an arm that ran and rewrite the run's files with it; its kept lab, if any.
    pub fn record(&mut self, ran: ArmRun) -> Result<Option<Lab>, CommandError> {
        self.unmet += usize::from(!ran.record.met);
        self.broke |= ran.lab_broke;
        self.run_dir.add(ran.record).map_err(|e| self.write_error(e))?;
        Ok(ran.kept)
    }

    fn write_error(&self, e: std::io::Error) -> CommandError {
        CommandError::Broken(format!("writing {}: {e}", self.run_dir.dir.display()))
    }

    /// The run's exit code so far.
    pub fn exit(&self) -> Exit {
        if self.broke {
            Exit::Broken
        } else if self.unmet > 0 {
            Exit::Failed
        } else {
            Exit::Ok
        }
    }
}

/// Serve `faultline shell` from a kept lab (its socket linked from the run folder) until
/// SIGINT or SIGTERM, then stop the lab.
pub async fn serve_kept(mut lab: Lab, run_dir: &Path, accel: Accel, console: &dyn Console) {
    // The socket lives where its path is short; the run folder gets a link to it.
    let socket = lab.socket_dir().join("shell.sock");
    let link = run_dir.join("shell.sock");
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(&socket, &link) {
        console.note(&format!("warning: linking {}: {e}", link.display()));
    }
    console.note(&format!(
        "lab kept: `faultline shell GUEST --run {}` to enter a guest; Ctrl-C stops it",
        run_dir.display()
    ));
    let limit = accel.scale(Duration::from_secs(60));
    let _ = crate::shell::serve(&mut lab, &socket, limit, async {
        stop_signal().await;
    })
    .await;
    let _ = std::fs::remove_file(&link);
    lab.stop().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_lab_outweighs_an_unmet_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::create(dir.path(), "t-", Accel::Tcg, dir.path().into(), "x".into()).unwrap();
        assert_eq!(r.exit(), Exit::Ok);
        r.unmet = 1;
        assert_eq!(r.exit(), Exit::Failed);
        r.broke = true;
        assert_eq!(r.exit(), Exit::Broken);
    }

    #[test]
    fn the_longest_arms_start_first_and_unknown_ones_before_them() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
        let case = crate::case::load(&file).unwrap();
        let images = BTreeMap::new();
        let variant = Variant::default();
        let turn = |expected_s| Turn {
            case: &case,
            arm: &case.arms[0],
            variant: &variant,
            images: &images,
            expected_s,
        };
        let turns = [
            turn(Some(10.0)),
            turn(Some(90.0)),
            turn(None),
            turn(Some(10.0)),
            turn(Some(40.0)),
        ];
        assert_eq!(start_order(&turns), [2, 1, 4, 0, 3]);
    }

    #[test]
    fn in_ci_or_when_asked_a_missing_vm_fails_the_trial_instead_of_skipping_it() {
        assert!(
            !vms_required(None, None),
            "a developer's machine skips with the reason"
        );
        assert!(vms_required(Some("true"), None));
        assert!(vms_required(Some("1"), None));
        assert!(!vms_required(Some(""), None));
        assert!(!vms_required(Some("false"), None));
        assert!(vms_required(None, Some("1")));
        assert!(!vms_required(None, Some("0")));
    }
}
