//! VM tests: every trial boots real QEMU guests from the built images.
//!
//! Listing (`--list`, as cargo-nextest does) only reads recipes and the image cache: nothing
//! boots, and nothing but the list goes to stdout. A trial whose prerequisites are missing
//! (no QEMU, an image not built) is listed as ignored, and the reason goes to stderr; in CI
//! (`CI` set) or with `FAULTLINE_REQUIRE_VMS=1` it fails instead.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use faultline::{accel, hosttools, images};

#[path = "vm/broken_patch.rs"]
mod broken_patch;
#[path = "vm/custom_kernel.rs"]
mod custom_kernel;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

fn main() {
    let args = Arguments::from_args();
    let listing = args.list;
    let mut trials = Vec::new();
    // A trial whose prerequisites are missing is listed as ignored, with the reason on stderr
    // (never stdout: cargo-nextest reads the list from there).
    // In CI (or when asked) a trial that cannot boot fails: a green run must mean they ran.
    let require_vms = faultline::suite::vms_required_here();
    let mut add = |name: &str, ready: Result<Box<dyn FnOnce() -> Result<(), Failed> + Send>, String>| {
        match ready {
            Ok(run) => trials.push(Trial::test(name, run)),
            Err(reason) if require_vms => {
                let why = format!(
                    "{reason} (VMs are required: CI or FAULTLINE_REQUIRE_VMS=1 is set, so a trial that cannot boot fails)"
                );
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
    };
    let cache = images::cache::default_root();
    let recipes =
        images::load_recipes(&project_root().join("images"), &[]).expect("the project's image recipes load");
    let qemu = hosttools::require(&[hosttools::QEMU_SYSTEM, hosttools::QEMU_IMG]).map_err(|e| e.to_string());
    for recipe in recipes {
        let image = qemu
            .clone()
            .and_then(|()| images::lookup(&recipe, &cache).map_err(|e| e.to_string()));
        add(
            &format!("images::check::{}", recipe.name),
            image.map(|i| Box::new(move || check_image(&i)) as _),
        );
    }
    let lab = qemu.clone().and_then(|()| lab_images());
    // A broken guest must end in a clear error within its deadline, never a hang.
    let broken: [(&str, ImageTrial); 2] = [
        ("qemu::exit_at_start_is_a_clear_error", exit_at_start),
        ("qemu::silent_guest_times_out_with_console", silent_guest),
    ];
    for (name, f) in broken {
        add(
            name,
            lab.clone().map(|(filer, _)| Box::new(move || f(&filer)) as _),
        );
    }
    add(
        "lab::sigkill_leaves_no_process",
        lab.clone().map(|_| Box::new(sigkill_leaves_no_process) as _),
    );
    add(
        "run::sigkill_with_disks_leaves_no_process",
        lab.clone()
            .and_then(|l| {
                hosttools::require(&[hosttools::NBDKIT])
                    .map(|()| l)
                    .map_err(|e| e.to_string())
            })
            .map(|_| Box::new(sigkill_with_disks_leaves_no_process) as _),
    );
    add(
        "run::two_harnesses_side_by_side_meet_their_expectations_and_die_alone",
        lab.clone()
            .and_then(|l| {
                hosttools::require(&[hosttools::NBDKIT])
                    .map(|()| l)
                    .map_err(|e| e.to_string())
            })
            .map(|_| Box::new(two_harnesses_side_by_side) as _),
    );
    add(
        "run::parallel_arms_stopped_by_sigterm_are_recorded_and_leave_nothing",
        lab.clone()
            .and_then(|l| {
                hosttools::require(&[hosttools::NBDKIT])
                    .map(|()| l)
                    .map_err(|e| e.to_string())
            })
            .map(|_| Box::new(parallel_arms_stopped) as _),
    );
    // Builds its own image, so it needs the builder's tools rather than a built image; the
    // lab's other guests run the project's images.
    add(
        custom_kernel::TRIAL,
        lab.clone()
            .and_then(|l| custom_kernel::host_tools().map(|()| l))
            .map(|_| Box::new(custom_kernel::trial) as _),
    );
    {
        let (project, cache) = (project_root(), cache.clone());
        let ready = broken_patch::ready(&project, &cache);
        add(
            broken_patch::TRIAL,
            ready.map(|()| Box::new(move || broken_patch::trial(&project, &cache)) as _),
        );
    }
    let lab_trials: [(&str, LabBody); 2] = [
        ("lab::three_guests_ping_by_name", lab_ping),
        ("lab::rule_drops_granted_msg", lab_granted_msg_dropped),
    ];
    for (name, body) in lab_trials {
        add(name, lab.clone().map(|_| Box::new(move || with_lab(body)) as _));
    }
    add(
        "lab::mounted_lab_resumes_with_nfs_up",
        lab.clone()
            .map(|_| Box::new(|| with_mounted_lab(lab_mounted)) as _),
    );
    libtest_mimic::run(&args, trials).exit();
}

/// A scratch folder (removed on drop unless kept) and a single-threaded runtime for one trial.
fn scratch(prefix: &str) -> Result<(tempfile::TempDir, tokio::runtime::Runtime), String> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok((dir, rt))
}

/// Boot the image and require that it matches its manifest.
fn check_image(image: &images::Image) -> Result<(), Failed> {
    let decision = accel::decide(None, Some(&image.kernel()));
    let (work, rt) = scratch("faultline-vmtest-")?;
    let report = rt
        .block_on(images::check::check(image, decision.accel, work.path()))
        .map_err(|e| e.to_string())?;
    eprintln!("{}", images::check::summary(&report));
    if report.passed() {
        Ok(())
    } else {
        Err(images::check::summary(&report).into())
    }
}

// ---- lab trials ------------------------------------------------------------------------

/// Hold a POSIX (fcntl) write lock on ARGV[0], print "locked", sleep ARGV[1] seconds, exit.
/// perl-base is in every Debian image; flock(1) would not do (BSD locks never meet NLM
/// contention from a server-local holder).
const LOCK_PL: &str = r#"use Fcntl;
open(my $f, "+>>", $ARGV[0]) or die "open $ARGV[0]: $!";
my $l = pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0);
fcntl($f, F_SETLKW, $l) or die "lock: $!";
$| = 1;
print "locked\n";
sleep $ARGV[1];
"#;

type ImageTrial = fn(&images::Image) -> Result<(), Failed>;

type LabBody = for<'a> fn(
    &'a mut faultline::lab::Lab,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>;

fn lab_images() -> Result<(images::Image, images::Image), String> {
    let cache = images::cache::default_root();
    let recipes = images::load_recipes(&project_root().join("images"), &[]).map_err(|e| e.to_string())?;
    let find = |n: &str| -> Result<images::Image, String> {
        let r = recipes
            .iter()
            .find(|r| r.name == n)
            .ok_or(format!("no {n} recipe"))?;
        images::lookup(r, &cache).map_err(|e| e.to_string())
    };
    Ok((find("filer")?, find("frontend")?))
}

/// Start the three-guest lab, run `body`, stop the lab; keep the run folder on failure.
fn with_lab<F>(body: F) -> Result<(), Failed>
where
    F: for<'a> FnOnce(
        &'a mut faultline::lab::Lab,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>,
{
    run_lab(false, body)
}

/// The same, from the whole-lab state with the front-ends' NFS mounts up.
fn with_mounted_lab<F>(body: F) -> Result<(), Failed>
where
    F: for<'a> FnOnce(
        &'a mut faultline::lab::Lab,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>,
{
    run_lab(true, body)
}

fn run_lab<F>(mounted: bool, body: F) -> Result<(), Failed>
where
    F: for<'a> FnOnce(
        &'a mut faultline::lab::Lab,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>,
{
    let (filer, frontend) = lab_images()?;
    let decision = accel::decide(None, Some(&filer.kernel()));
    let (dir, rt) = scratch("faultline-lab-")?;
    let result = rt.block_on(async {
        let spec = faultline::lab::LabSpec {
            segment: "lan".into(),
            guests: vec![
                faultline::lab::GuestSpec {
                    name: "filer".into(),
                    image: filer,
                },
                faultline::lab::GuestSpec {
                    name: "imap1".into(),
                    image: frontend.clone(),
                },
                faultline::lab::GuestSpec {
                    name: "imap2".into(),
                    image: frontend,
                },
            ],
            accel: decision.accel,
            dir: dir.path().to_path_buf(),
            cache_root: images::cache::default_root(),
        };
        let mut say = |l: &str| eprintln!("{l}");
        let lab = if mounted {
            let setup = faultline::lab::mounted(&["imap1", "imap2"]);
            faultline::lab::Lab::start_prepared(spec, &setup, &mut say).await
        } else {
            faultline::lab::Lab::start(spec, &mut say).await
        };
        let mut lab = lab.map_err(|e| e.to_string())?;
        let r = body(&mut lab).await;
        let stats = lab.stop().await;
        eprintln!(
            "switch: {} frames; rules: {:?}",
            stats.frames,
            stats
                .rules
                .iter()
                .map(|r| (&r.name, r.matched))
                .collect::<Vec<_>>()
        );
        r
    });
    if result.is_err() {
        eprintln!("lab files kept in {}", dir.keep().display());
    }
    result.map_err(Failed::from)
}

async fn sh(lab: &mut faultline::lab::Lab, guest: &str, script: &str, secs: u64) -> Result<String, String> {
    let accel = lab.accel;
    let vm = lab.guest(guest).ok_or(format!("no guest {guest}"))?;
    let out = vm
        .exec(script, accel.scale(std::time::Duration::from_secs(secs)))
        .await
        .map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!(
            "{guest}: `{script}` exited {}: {}{}",
            out.exit_code, out.stdout, out.stderr
        ));
    }
    Ok(out.stdout)
}

/// tshark's reading of a pcapng: one line of `fields` per frame. None when tshark is missing.
fn tshark(pcap: &Path, fields: &[&str]) -> Option<Vec<String>> {
    if let Err(e) = hosttools::find(hosttools::TSHARK) {
        // Said out loud: the trial still checks the switch's own counts, but not from outside.
        eprintln!("outside check skipped: {e}");
        return None;
    }
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r").arg(pcap).args([
        "-d",
        "tcp.port==4045,rpc",
        "-d",
        "udp.port==4045,rpc",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

fn lab_ping(
    lab: &mut faultline::lab::Lab,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + '_>> {
    Box::pin(async move {
        for (from, to) in [
            ("filer", "imap1"),
            ("filer", "imap2"),
            ("imap1", "imap2"),
            ("imap1", "filer"),
            ("imap2", "filer"),
            ("imap2", "imap1"),
        ] {
            sh(lab, from, &format!("ping -c 1 -W 5 {to}"), 10).await?;
        }
        let timings: Vec<String> = lab
            .timings
            .iter()
            .map(|t| format!("{} {:.2} s", t.guest, t.ready_s))
            .collect();
        eprintln!("lab ready in {:.2} s ({})", lab.ready_s, timings.join(", "));
        let stats = lab.switch.stats().await;
        if let Some(lines) = tshark(&lab.pcap(), &["frame.number"]) {
            if lines.len() as u64 != stats.frames {
                return Err(format!(
                    "tshark reads {} frames, the switch saw {}",
                    lines.len(),
                    stats.frames
                ));
            }
            eprintln!("tshark reads all {} frames", lines.len());
        }
        Ok(())
    })
}

fn lab_granted_msg_dropped(
    lab: &mut faultline::lab::Lab,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + '_>> {
    Box::pin(async move {
        use faultline::wire::rules::{Action, Match, RpcMatch, Rule};
        for g in ["filer", "imap1"] {
            let accel = lab.accel;
            let vm = lab.guest(g).unwrap();
            vm.agent
                .write_file(
                    "/tmp/lock.pl",
                    LOCK_PL.as_bytes(),
                    accel.scale(std::time::Duration::from_secs(5)),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        sh(
            lab,
            "imap1",
            "mount /srv/mail && grep ' /srv/mail nfs ' /proc/mounts | grep -q vers=3",
            30,
        )
        .await?;
        sh(lab, "filer", "setsid perl /tmp/lock.pl /export/lockfile 8 >/tmp/holder.log 2>&1 & for i in $(seq 100); do grep -q locked /tmp/holder.log && exit 0; sleep 0.1; done; exit 1", 20).await?;
        let rule = lab
            .switch
            .add_rule(Rule {
                name: "grant-lost".into(),
                matcher: Match {
                    to: Some("imap1".into()),
                    rpc: Some(RpcMatch::call(100021, 10)),
                    ..Match::default()
                },
                action: Action::Drop,
            })
            .await;
        let t0 = std::time::Instant::now();
        sh(
            lab,
            "imap1",
            "setsid perl /tmp/lock.pl /srv/mail/lockfile 1 >/tmp/waiter.log 2>&1 &",
            10,
        )
        .await?;
        // The holder lets go after 8 s; the grant is dropped; imap1's lockd re-polls 30 s
        // after its LOCK was answered BLOCKED, and gets the lock then.
        sh(lab, "imap1", "for i in $(seq 900); do grep -q locked /tmp/waiter.log && exit 0; sleep 0.1; done; cat /tmp/waiter.log; exit 1", 120).await?;
        let waited = t0.elapsed();
        let stats = lab.switch.stats().await;
        let r = stats.rules.iter().find(|r| r.id == rule).ok_or("rule missing")?;
        eprintln!(
            "imap1 got the lock after {:.1} s; rule dropped {} frames: {:?}",
            waited.as_secs_f64(),
            r.matched,
            r.frames
        );
        if r.matched == 0 {
            return Err("no GRANTED_MSG was dropped: the fault did not fire".into());
        }
        let fields = [
            "frame.number",
            "frame.comment",
            "rpc.program",
            "rpc.procedure",
            "rpc.msgtyp",
            "ip.dst",
            "tcp.stream",
            "tcp.seq_raw",
        ];
        if let Some(lines) = tshark(&lab.pcap(), &fields) {
            // tshark does not dissect RPC in a TCP retransmission; a retransmission is the
            // same call again, recognised by its stream and sequence number.
            let mut grant_segments = std::collections::HashSet::new();
            for l in &lines {
                let f: Vec<&str> = l.split('|').collect();
                let (no, comment, prog, proc_, typ, dst, stream, seq) =
                    (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
                let decoded_grant = prog.split(',').any(|p| p == "100021")
                    && proc_.split(',').any(|p| p == "10")
                    && typ.split(',').any(|t| t == "0")
                    && dst == "192.0.2.11";
                if decoded_grant {
                    grant_segments.insert((stream.to_string(), seq.to_string()));
                }
                let grant_to_imap1 = decoded_grant
                    || (!stream.is_empty()
                        && grant_segments.contains(&(stream.to_string(), seq.to_string())));
                let dropped = comment.contains("grant-lost");
                if grant_to_imap1 != dropped {
                    return Err(format!(
                        "frame {no}: GRANTED_MSG to imap1 = {grant_to_imap1}, dropped = {dropped} ({l})"
                    ));
                }
            }
            if grant_segments.is_empty() {
                return Err("tshark found no GRANTED_MSG to imap1 in the capture".into());
            }
            eprintln!(
                "tshark agrees on all {} frames: exactly the GRANTED_MSG calls to imap1 were dropped",
                lines.len()
            );
        }
        Ok(())
    })
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default())
            .replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{name}: {}",
                cmdline.chars().take(160).collect::<String>()
            ));
        }
    }
    found
}

/// `faultline lab` is SIGKILLed with three guests running: no QEMU may survive it.
fn sigkill_leaves_no_process() -> Result<(), Failed> {
    let recipes = project_root().join("images");
    let recipes = recipes.display().to_string();
    killed_leaves_nothing(
        |dir| {
            vec![
                "lab".into(),
                "--seconds".into(),
                "600".into(),
                "--recipes".into(),
                recipes.clone(),
                "--dir".into(),
                dir.into(),
            ]
        },
        "lab up in ",
        &[("qemu-system", 3)],
    )
}

/// A kept scenario lab with an nbdkit disk: neither QEMU nor nbdkit outlives a SIGKILLed
/// harness.
fn sigkill_with_disks_leaves_no_process() -> Result<(), Failed> {
    let root = project_root();
    let case = root.join("cases/shelf-error.toml").display().to_string();
    let recipes = root.join("images").display().to_string();
    killed_leaves_nothing(
        |dir| {
            vec![
                "run".into(),
                case.clone(),
                "--arm".into(),
                "baseline".into(),
                "--keep".into(),
                "--recipes".into(),
                recipes.clone(),
                "--results".into(),
                dir.into(),
            ]
        },
        "lab kept: ",
        &[("qemu-system", 2), ("nbdkit", 1)],
    )
}

/// Start `faultline ARGS(dir)`, wait for a stderr line starting with `ready`, count the
/// processes naming the scratch folder, SIGKILL the harness, and require that none is left.
fn killed_leaves_nothing(
    args: impl Fn(&str) -> Vec<String>,
    ready: &'static str,
    expect: &[(&str, usize)],
) -> Result<(), Failed> {
    use std::io::BufRead;
    let dir = tempfile::Builder::new()
        .prefix("faultline-kill-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir_s = dir.path().display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args(&dir_s))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            if line.starts_with(ready) {
                let _ = tx.send(());
            }
        }
    });
    // Saved states may need a cold boot each the first time.
    let up = rx.recv_timeout(std::time::Duration::from_secs(600));
    let before = processes_mentioning(&dir_s);
    child.kill().map_err(|e| e.to_string())?; // SIGKILL: no destructor or handler runs
    let _ = child.wait();
    if up.is_err() {
        return Err(format!("never saw a line starting {ready:?}").into());
    }
    for (what, n) in expect {
        let running = before.iter().filter(|p| p.contains(what)).count();
        if running != *n {
            return Err(format!("expected {n} {what} processes before the kill, saw {running}").into());
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&dir_s).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left = processes_mentioning(&dir_s);
    if !left.is_empty() {
        return Err(format!("processes outlived the harness: {left:?}").into());
    }
    let said: Vec<String> = expect.iter().map(|(w, n)| format!("{n} {w}")).collect();
    eprintln!("{} before SIGKILL, none after", said.join(" and "));
    Ok(())
}

/// One `faultline run --keep` of one arm, its stderr watched for the kept lab.
struct Harness {
    what: &'static str,
    child: std::process::Child,
    /// Its `--results` folder: kept when the trial fails, removed when it passes.
    results: PathBuf,
    kept: std::sync::mpsc::Receiver<()>,
}

impl Harness {
    fn start(what: &'static str, case: &str, arm: &str) -> Result<Harness, String> {
        use std::io::BufRead;
        let root = project_root();
        let results = tempfile::Builder::new()
            .prefix("faultline-side-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("run")
            .arg(root.join("cases").join(format!("{case}.toml")))
            .args(["--arm", arm, "--keep", "--recipes"])
            .arg(root.join("images"))
            .arg("--results")
            .arg(&results)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, kept) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  {what} | {line}");
                if line.starts_with("lab kept: ") {
                    let _ = tx.send(());
                }
            }
        });
        Ok(Harness {
            what,
            child,
            results,
            kept,
        })
    }

    fn dir(&self) -> String {
        self.results.display().to_string()
    }

    /// Wait until its arm has been judged and its lab is kept; then whether the arm met its
    /// expectation, from its `run.json`.
    fn judged(&mut self, limit: std::time::Duration) -> Result<(), String> {
        if self.kept.recv_timeout(limit).is_err() {
            let status = self.child.try_wait().ok().flatten();
            return Err(format!(
                "{}: no kept lab within {limit:?} (exit: {status:?})",
                self.what
            ));
        }
        let path = self.results.join("latest").join("run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: faultline::results::RunRecord =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match run.arms.as_slice() {
            [a] if a.met => {
                eprintln!("{}: {}::{} {} as expected", self.what, a.case, a.arm, a.verdict);
                Ok(())
            }
            [a] => Err(format!(
                "{}: {}::{} is {} (expected {}): {}",
                self.what, a.case, a.arm, a.verdict, a.expected, a.explanation
            )),
            arms => Err(format!("{}: {} arms in run.json, not 1", self.what, arms.len())),
        }
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no destructor or handler runs
        let _ = self.child.wait();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Processes of `dir`'s harness by kind, e.g. `[("qemu-system", 3)]`.
fn counted(dir: &str, kinds: &[&str]) -> Vec<(String, usize)> {
    let procs = processes_mentioning(dir);
    kinds
        .iter()
        .map(|k| (k.to_string(), procs.iter().filter(|p| p.contains(k)).count()))
        .collect()
}

/// Two `faultline run` processes at once, the second started 70 s after the first: by then
/// the first's socket folders are old enough for the second's sweep of stale folders to look
/// at them, while the first's arm is still running. Both arms must meet their expectations
/// (the sweep must not cut the first's guests off their switch), and a SIGKILL of either
/// leaves nothing of it behind and takes nothing of the other.
fn two_harnesses_side_by_side() -> Result<(), Failed> {
    let mut harnesses = Vec::new();
    let r = side_by_side(&mut harnesses);
    for h in &mut harnesses {
        h.sigkill();
        if r.is_ok() {
            let _ = std::fs::remove_dir_all(&h.results);
        } else {
            eprintln!("{} harness's results kept in {}", h.what, h.results.display());
        }
    }
    r.map_err(Failed::from)
}

fn side_by_side(harnesses: &mut Vec<Harness>) -> Result<(), String> {
    use std::time::Duration;
    const KINDS: [&str; 2] = ["qemu-system", "nbdkit"];
    // smoke's baseline runs for minutes (three guests, NFS and mail); shelf-error's has an
    // nbdkit disk, so both kinds of child are counted.
    harnesses.push(Harness::start("first", "smoke", "baseline")?);
    std::thread::sleep(Duration::from_secs(70));
    harnesses.push(Harness::start("second", "shelf-error", "baseline")?);
    let limit = Duration::from_secs(1200);
    let judged: Vec<_> = harnesses.iter_mut().rev().map(|h| h.judged(limit)).collect();
    let errors: Vec<String> = judged.into_iter().filter_map(Result::err).collect();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let [first, second] = &mut harnesses[..] else {
        unreachable!("two harnesses were started")
    };
    let expect_first = vec![("qemu-system".to_string(), 3), ("nbdkit".to_string(), 0)];
    let expect_second = vec![("qemu-system".to_string(), 2), ("nbdkit".to_string(), 1)];
    let (a, b) = (first.dir(), second.dir());
    for (what, dir, expect) in [("first", &a, &expect_first), ("second", &b, &expect_second)] {
        let running = counted(dir, &KINDS);
        if &running != expect {
            return Err(format!(
                "{what} harness's kept lab: expected {expect:?}, saw {running:?}"
            ));
        }
    }
    // Kill one: nothing of it may be left, and all of the other must still run.
    let gone = |dir: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !processes_mentioning(dir).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        processes_mentioning(dir)
    };
    first.sigkill();
    let left = gone(&a);
    if !left.is_empty() {
        return Err(format!("processes outlived the first harness: {left:?}"));
    }
    let running = counted(&b, &KINDS);
    if running != expect_second {
        return Err(format!(
            "killing the first harness took processes of the second: expected {expect_second:?}, saw {running:?}"
        ));
    }
    second.sigkill();
    let left = gone(&b);
    if !left.is_empty() {
        return Err(format!("processes outlived the second harness: {left:?}"));
    }
    eprintln!("both arms met their expectations side by side; each SIGKILL left nothing of its harness");
    Ok(())
}

/// `faultline run --jobs 3` of four arms, SIGTERMed once three labs are up: the run ends
/// with exit 3 within its deadline, the arms under way are recorded as interrupted by
/// SIGTERM (the fourth never started and is not recorded), and no QEMU or nbdkit of the run
/// is left.
fn parallel_arms_stopped() -> Result<(), Failed> {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let root = project_root();
    let results = tempfile::Builder::new()
        .prefix("faultline-jobs-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = results.path().display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(root.join("cases/smoke.toml"))
        .arg(root.join("cases/shelf-error.toml"))
        .args(["--jobs", "3", "--recipes"])
        .arg(root.join("images"))
        .arg("--results")
        .arg(results.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, up) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            if line.contains(": lab ready in ") {
                let _ = tx.send(());
            }
        }
    });
    let stopped = (|| {
        let deadline = Instant::now() + Duration::from_secs(600);
        for n in 0..3 {
            let left = deadline.saturating_duration_since(Instant::now());
            up.recv_timeout(left)
                .map_err(|_| format!("only {n} of 3 labs came up within 600 s"))?;
        }
        let running = counted(&dir, &["qemu-system", "nbdkit"]);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > deadline {
                return Err("still running 60 s after SIGTERM".to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Ok::<_, String>((running, status))
    })();
    let _ = child.kill();
    let _ = child.wait();
    let (running, status) = stopped?;
    if running.iter().map(|(_, n)| n).sum::<usize>() < 8 {
        return Err(
            format!("expected three labs (8 QEMU and nbdkit processes or more), saw {running:?}").into(),
        );
    }
    if status.code() != Some(3) {
        return Err(format!("exit {status} after SIGTERM, expected 3").into());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = processes_mentioning(&dir);
    if !left.is_empty() {
        return Err(format!("processes outlived the run: {left:?}").into());
    }
    let path = results.path().join("latest/run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let run: faultline::results::RunRecord =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let interrupted = run
        .arms
        .iter()
        .filter(|a| a.explanation == "interrupted by SIGTERM before the arm finished")
        .count();
    if interrupted == 0 || run.arms.len() > 4 {
        return Err(format!(
            "run.json: {} arms, {interrupted} interrupted by SIGTERM: {:?}",
            run.arms.len(),
            run.arms
                .iter()
                .map(|a| format!("{}::{} {}", a.case, a.arm, a.explanation))
                .collect::<Vec<_>>()
        )
        .into());
    }
    eprintln!(
        "{running:?} before SIGTERM; exit 3; {interrupted} arm(s) recorded as interrupted, {} in all; nothing left",
        run.arms.len()
    );
    Ok(())
}

fn start_broken(
    image: &images::Image,
    extra_cmdline: &str,
    nics: usize,
    limit: std::time::Duration,
) -> Result<String, Failed> {
    let (dir, rt) = scratch("faultline-broken-")?;
    let t = std::time::Instant::now();
    let err = rt.block_on(async {
        let nic = faultline::qemu::Nic {
            mac: faultline::qemu::argv::mac(1, 0),
            backend: faultline::qemu::NicBackend::Unplugged,
        };
        let mut vm = faultline::qemu::Machine::start(faultline::qemu::Launch {
            name: "broken".into(),
            image,
            accel: accel::decide(None, None).accel,
            cpus: 1,
            memory_mib: 512,
            extra_cmdline: extra_cmdline.into(),
            nics: vec![nic; nics],
            dir: dir.path().join("broken"),
            restore: None,
        })
        .await?;
        let r = vm.wait_agent(limit).await;
        vm.shutdown().await;
        r.map(|_| ())
    });
    let elapsed = t.elapsed();
    match err {
        Ok(()) => Err("the broken guest answered".into()),
        Err(e) if elapsed < limit + std::time::Duration::from_secs(15) => Ok(e.to_string()),
        Err(e) => Err(format!("took {elapsed:?}, more than the {limit:?} deadline: {e}").into()),
    }
}

/// A QEMU that refuses its command line (more vCPUs than the machine type allows) exits at
/// once, and the error shows QEMU's own message.
fn exit_at_start(image: &images::Image) -> Result<(), Failed> {
    let (dir, rt) = scratch("faultline-broken-")?;
    let r = rt.block_on(faultline::qemu::Machine::start(faultline::qemu::Launch {
        name: "broken".into(),
        image,
        accel: faultline::accel::Accel::Tcg,
        cpus: 9999,
        memory_mib: 512,
        extra_cmdline: String::new(),
        nics: vec![],
        dir: dir.path().join("broken"),
        restore: None,
    }));
    let e = match r {
        Ok(_) => return Err("QEMU started with 9999 vCPUs".into()),
        Err(e) => e.to_string(),
    };
    eprintln!("{e}");
    if !e.contains("QEMU exited at start") || !e.contains("qemu-system-x86_64:") {
        return Err(format!("the error does not say QEMU exited and why: {e}").into());
    }
    Ok(())
}

/// A guest whose init never starts the agent: the wait ends at its deadline, and the error
/// carries the console's last lines.
fn silent_guest(image: &images::Image) -> Result<(), Failed> {
    let e = start_broken(image, "init=/bin/cat", 1, std::time::Duration::from_secs(30))?;
    eprintln!("{e}");
    if !e.contains("QEMU exited while the guest was booting") && !e.contains("no answer from the guest agent")
    {
        return Err(format!("unexpected error: {e}").into());
    }
    // The last thing the initramfs prints before it hands over to init (here: cat, which
    // reads the console forever).
    if !e.contains("Running /scripts/init-bottom") {
        return Err(format!("the console tail is not in the error: {e}").into());
    }
    Ok(())
}

fn lab_mounted(
    lab: &mut faultline::lab::Lab,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + '_>> {
    Box::pin(async move {
        eprintln!("mounted lab ready in {:.2} s", lab.ready_s);
        // The mounts were made before the save; after the restore they must still work, in
        // both directions, through the filer.
        let token = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        sh(
            lab,
            "imap1",
            &format!("echo {token} > /srv/mail/written-by-imap1 && sync"),
            20,
        )
        .await?;
        let seen = sh(lab, "imap2", "cat /srv/mail/written-by-imap1", 20).await?;
        if seen.trim() != token {
            return Err(format!("imap2 read {seen:?}, imap1 wrote {token:?}"));
        }
        let on_filer = sh(lab, "filer", "cat /export/written-by-imap1", 10).await?;
        if on_filer.trim() != token {
            return Err(format!("the filer has {on_filer:?}, imap1 wrote {token:?}"));
        }
        let clock = sh(lab, "imap2", "date +%s", 10).await?;
        let host = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let guest: i64 = clock.trim().parse().map_err(|e| format!("date: {e}"))?;
        if (guest - host).abs() > 5 {
            return Err(format!("imap2's clock is {} s off the host's", guest - host));
        }
        Ok(())
    })
}
