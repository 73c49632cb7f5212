//! The `faultline` command: a thin layer over the library. Exit codes are in the README.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use faultline::images;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Fault-injection harness: NFSv3 and Dovecot on stock kernels in QEMU guests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Guest images: build them from their recipes, check they boot.
    Images {
        #[command(subcommand)]
        command: ImagesCmd,
    },
    /// Start the three-guest lab (filer, imap1, imap2) from saved state and keep it up.
    Lab(LabArgs),
    /// Measure guest start, switch throughput and switch frame rate side by side.
    Bench(LabArgs),
    /// List every case::arm with its expected verdict (reads case files only).
    List(ListArgs),
    /// Run cases' arms in the lab and write results/<run-id>/.
    Run(RunArgs),
    /// Make report.html and junit.xml of a run folder again from its run.json.
    Report {
        /// The run folder (e.g. results/latest).
        run_dir: PathBuf,
    },
    /// Run commands in a guest of a lab kept by `faultline run --keep`.
    Shell(ShellArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    /// Case files, folders or names (default: every case in --cases-dir).
    cases: Vec<String>,
    #[arg(long, default_value = faultline::suite::CASES_DIR)]
    cases_dir: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Case files, folders or names (default: every case in --cases-dir).
    cases: Vec<String>,
    #[arg(long, default_value = faultline::suite::CASES_DIR)]
    cases_dir: PathBuf,
    /// Only arms of this name.
    #[arg(long)]
    arm: Option<String>,
    /// Keep the last arm's lab up afterwards for `faultline shell` (until Ctrl-C).
    #[arg(long)]
    keep: bool,
    /// Run only the K-th of N slices of the selected arms, e.g. 1/2.
    #[arg(long)]
    partition: Option<faultline::suite::Partition>,
    /// Where run folders go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(clap::Args)]
struct ShellArgs {
    /// The guest (filer, imap1, ...).
    guest: String,
    /// The kept run's folder.
    #[arg(long, default_value = "results/latest")]
    run: PathBuf,
    /// Run this one command instead of reading commands from stdin.
    #[arg(short = 'c')]
    command: Option<String>,
}

/// Where images come from and which accelerator runs them: shared by every command.
#[derive(clap::Args)]
struct Common {
    /// Folder with the image recipes.
    #[arg(long, default_value = "images")]
    recipes: PathBuf,
    /// Cache folder (default: $FAULTLINE_CACHE, else ~/.cache/faultline).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Accelerator (default: KVM only where a probe boot proves it works).
    #[arg(long)]
    accel: Option<faultline::accel::Accel>,
}

impl Common {
    fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(images::cache::default_root)
    }
}

#[derive(clap::Args)]
struct LabArgs {
    #[command(flatten)]
    common: Common,
    /// Where the lab's files go (default: a new temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// `lab`: start from the whole-lab state with the front-ends' NFS mounts up (made on
    /// first use).
    #[arg(long)]
    mounted: bool,
    /// `lab`: how long to keep the lab up before stopping it.
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
}

#[derive(clap::Args)]
struct ImagesArgs {
    #[command(flatten)]
    common: Common,
    /// Only these images (by recipe name).
    names: Vec<String>,
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// Build every image whose recipe changed (a cache hit is instant).
    Build(ImagesArgs),
    /// Boot each built image and confirm kernel, services and packages through its agent.
    Check(ImagesArgs),
    /// Print each image's cache entry (or that it is not built).
    List(ImagesArgs),
}

/// Exit codes (README): 0 ok, 1 a check failed, 2 usage or input error, 3 the lab or a tool broke.
const EXIT_FAILED: u8 = 1;
const EXIT_INPUT: u8 = 2;
const EXIT_BROKEN: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Images { command } => images_cmd(command),
        Cmd::Lab(a) => lab_cmd(a, false),
        Cmd::Bench(a) => lab_cmd(a, true),
        Cmd::List(a) => list_cmd(a),
        Cmd::Run(a) => run_cmd(a),
        Cmd::Report { run_dir } => report_cmd(&run_dir),
        Cmd::Shell(a) => shell_cmd(a),
    }
}

fn images_cmd(cmd: ImagesCmd) -> ExitCode {
    let (ImagesCmd::Build(a) | ImagesCmd::Check(a) | ImagesCmd::List(a)) = &cmd;
    let cache = a.common.cache();
    let recipes = match images::load_recipes(&a.common.recipes, &a.names) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    match cmd {
        ImagesCmd::Build(_) => {
            let start = std::time::Instant::now();
            let results = images::build_all(&recipes, &cache, &|l| eprintln!("{l}"));
            let mut code = ExitCode::SUCCESS;
            for (r, result) in recipes.iter().zip(results) {
                match result {
                    Ok(b) => println!(
                        "{} {} ({:.1} s, {} MiB): {}",
                        if b.cache_hit { "cached" } else { "built " },
                        r.name,
                        if b.cache_hit {
                            0.0
                        } else {
                            b.image.manifest.build_seconds
                        },
                        b.image.manifest.sizes.values().sum::<u64>() >> 20,
                        b.image.dir.display()
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = ExitCode::from(match e {
                            images::BuildError::Recipe(_) => EXIT_INPUT,
                            _ => EXIT_BROKEN,
                        });
                    }
                }
            }
            eprintln!("images: {:.2} s in all", start.elapsed().as_secs_f64());
            code
        }
        ImagesCmd::List(_) => {
            for r in &recipes {
                match images::lookup(r, &cache) {
                    Ok(img) => println!("{}\t{}\t{}", r.name, img.manifest.recipe_hash, img.dir.display()),
                    Err(e) => println!("{}\t-\t{e}", r.name),
                }
            }
            ExitCode::SUCCESS
        }
        ImagesCmd::Check(a) => check_images(&recipes, &cache, a.common.accel),
    }
}

fn check_images(
    recipes: &[faultline::recipe::Recipe],
    cache: &std::path::Path,
    forced: Option<faultline::accel::Accel>,
) -> ExitCode {
    let mut built = Vec::new();
    for r in recipes {
        match images::lookup(r, cache) {
            Ok(i) => built.push(i),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BROKEN);
            }
        }
    }
    let decision = faultline::accel::decide(forced, built.first().map(|i| i.kernel()).as_deref());
    eprintln!("accelerator: {} ({})", decision.accel.as_str(), decision.reason);
    let work = match tempfile::Builder::new().prefix("faultline-check-").tempdir() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: creating a work folder: {e}");
            return ExitCode::from(EXIT_BROKEN);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut code = ExitCode::SUCCESS;
    for image in &built {
        match rt.block_on(images::check::check(image, decision.accel, work.path())) {
            Ok(r) => {
                println!("{}", images::check::summary(&r));
                if !r.passed() {
                    code = ExitCode::from(EXIT_FAILED);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                let kept = work.keep();
                eprintln!("guest files kept in {}", kept.display());
                return ExitCode::from(EXIT_BROKEN);
            }
        }
    }
    code
}

/// `faultline lab` and `faultline bench`: both need the two images and a work folder.
fn lab_cmd(a: LabArgs, bench: bool) -> ExitCode {
    let cache = a.common.cache();
    let recipes = match images::load_recipes(&a.common.recipes, &["filer".into(), "frontend".into()]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let mut found = Vec::new();
    for r in &recipes {
        match images::lookup(r, &cache) {
            Ok(i) => found.push(i),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BROKEN);
            }
        }
    }
    let (filer, frontend) = (found[0].clone(), found[1].clone());
    let decision = faultline::accel::decide(a.common.accel, Some(&filer.kernel()));
    eprintln!("accelerator: {} ({})", decision.accel.as_str(), decision.reason);
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = match tempfile::Builder::new().prefix("faultline-lab-").tempdir() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: creating a work folder: {e}");
                    return ExitCode::from(EXIT_BROKEN);
                }
            };
            tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let mut say = |l: &str| eprintln!("{l}");
        if bench {
            let report =
                faultline::bench::run(&filer, &frontend, decision.accel, &cache, &dir, &mut say).await?;
            println!("{}", report.render());
            return Ok(());
        }
        let spec = faultline::lab::LabSpec {
            segment: "lan".into(),
            guests: vec![
                faultline::lab::GuestSpec {
                    name: "filer".into(),
                    image: filer.clone(),
                },
                faultline::lab::GuestSpec {
                    name: "imap1".into(),
                    image: frontend.clone(),
                },
                faultline::lab::GuestSpec {
                    name: "imap2".into(),
                    image: frontend.clone(),
                },
            ],
            accel: decision.accel,
            dir: dir.clone(),
            cache_root: cache.clone(),
        };
        let lab = if a.mounted {
            let setup = faultline::lab::mounted(&["imap1", "imap2"]);
            faultline::lab::Lab::start_prepared(spec, &setup, &mut say).await?
        } else {
            faultline::lab::Lab::start(spec, &mut say).await?
        };
        eprintln!(
            "lab up in {}; pcapng {}; stopping in {} s (Ctrl-C stops now)",
            dir.display(),
            lab.pcap().display(),
            a.seconds
        );
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(a.seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let stats = lab.stop().await;
        eprintln!("switch saw {} frames", stats.frames);
        Ok::<(), faultline::qemu::VmError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BROKEN)
        }
    }
}

/// Load the named cases; a bad one is printed as `file:line:column: message`.
fn load_cases(names: &[String], cases_dir: &std::path::Path) -> Result<Vec<faultline::case::Case>, ExitCode> {
    let files = faultline::suite::case_files(names, cases_dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INPUT)
    })?;
    faultline::suite::load_cases(&files).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INPUT)
    })
}

fn list_cmd(a: ListArgs) -> ExitCode {
    let cases = match load_cases(&a.cases, &a.cases_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for c in &cases {
        for arm in &c.arms {
            let faults = if arm.faults.is_empty() {
                "no faults".to_string()
            } else {
                arm.faults.join(", ")
            };
            println!(
                "{}::{}\texpect {}\t{faults}",
                c.name,
                arm.name,
                arm.expect.verdict()
            );
        }
    }
    ExitCode::SUCCESS
}

/// A progress line: rewritten in place on a terminal, one line each otherwise.
struct Progress {
    tty: bool,
    start: std::time::Instant,
}

impl Progress {
    fn say(&self, line: &str) {
        use std::io::IsTerminal;
        let t = self.start.elapsed().as_secs_f64();
        if self.tty && std::io::stderr().is_terminal() {
            let mut l: String = format!("[{t:6.1} s] {line}").chars().take(150).collect();
            l = l.replace('\n', " ");
            eprint!("\r\x1b[K{l}");
        } else {
            eprintln!("[{t:6.1} s] {line}");
        }
    }

    fn done(&self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        println!("{line}");
    }
}

fn run_cmd(a: RunArgs) -> ExitCode {
    use faultline::{run, suite};
    let cases = match load_cases(&a.cases, &a.cases_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(arm) = &a.arm {
        if !cases.iter().any(|c| c.arm(arm).is_some()) {
            eprintln!("error: no case here has an arm named {arm}");
            return ExitCode::from(EXIT_INPUT);
        }
    }
    let chosen = suite::select(&cases, a.arm.as_deref(), a.partition);
    let recipes = match images::load_recipes(&a.common.recipes, &[]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    if let Err(e) =
        faultline::hosttools::require(&[faultline::hosttools::QEMU_SYSTEM, faultline::hosttools::QEMU_IMG])
    {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_BROKEN);
    }
    let cache = a.common.cache();
    let progress = Progress {
        tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        start: std::time::Instant::now(),
    };
    // Images first (built if missing): a run never starts half its arms and then finds one
    // cannot be built.
    let mut arm_images = Vec::new();
    for (ci, arm) in &chosen {
        let case = &cases[*ci];
        let arm = case.arm(arm).expect("selected arms exist");
        match run::arm_images(case, arm, &recipes, &cache, true, &mut |l| progress.say(l)) {
            Ok(i) => arm_images.push(i),
            Err(e) => {
                eprintln!("error: {}::{}: {e}", case.name, arm.name);
                return ExitCode::from(EXIT_BROKEN);
            }
        }
    }
    let probe = arm_images
        .first()
        .and_then(|m| m.values().next())
        .map(|i| i.kernel());
    let decision = faultline::accel::decide(a.common.accel, probe.as_deref());
    eprintln!("accelerator: {} ({})", decision.accel.as_str(), decision.reason);
    let rerun = {
        let mut r = String::from("faultline run");
        for c in &a.cases {
            r.push(' ');
            r.push_str(c);
        }
        if let Some(arm) = &a.arm {
            r.push_str(&format!(" --arm {arm}"));
        }
        if let Some(p) = a.partition {
            r.push_str(&format!(" --partition {}/{}", p.k, p.n));
        }
        r.push_str(&format!(" --accel {}", decision.accel.as_str()));
        r
    };
    let mut run_dir = match suite::RunDir::create(&a.results, "", decision.accel, rerun) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: creating the run folder in {}: {e}", a.results.display());
            return ExitCode::from(EXIT_BROKEN);
        }
    };
    let all_images: Vec<&images::Image> = {
        let mut seen = std::collections::BTreeMap::new();
        for m in &arm_images {
            for i in m.values() {
                seen.insert(i.manifest.recipe_hash.clone(), i);
            }
        }
        seen.into_values().collect()
    };
    run_dir.record.versions = suite::versions(&all_images, decision.accel);
    eprintln!("results: {}", run_dir.dir.display());
    let env = run::Env {
        cache_root: cache.clone(),
        accel: decision.accel,
        keep: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut code = ExitCode::SUCCESS;
    let (mut unmet, mut broke) = (0, false);
    let mut kept = None;
    for (n, ((ci, arm_name), images)) in chosen.iter().zip(&arm_images).enumerate() {
        let case = &cases[*ci];
        let arm = case.arm(arm_name).expect("selected arms exist");
        let last = n + 1 == chosen.len();
        let env = run::Env {
            keep: a.keep && last,
            ..env.clone()
        };
        progress.say(&format!(
            "[{}/{}] {}::{}",
            n + 1,
            chosen.len(),
            case.name,
            arm.name
        ));
        let rerun = suite::rerun_command(case, Some(&arm.name), decision.accel);
        let interrupted = rt.block_on(async {
            let mut say = |l: &str| progress.say(&format!("[{}/{}] {l}", n + 1, chosen.len()));
            tokio::select! {
                r = run::run_arm(&env, case, arm, images, &run_dir.dir, rerun.clone(), &mut say) => Ok(r),
                s = stop_signal() => Err(s),
            }
        });
        let result = match interrupted {
            Ok(r) => r,
            Err(signal) => {
                let record = faultline::results::ArmRecord {
                    explanation: format!("interrupted by {signal} before the arm finished"),
                    ..run::unfinished(case, arm, rerun)
                };
                let _ = run_dir.add(record);
                eprintln!(
                    "\ninterrupted by {signal}: partial results in {}",
                    run_dir.dir.display()
                );
                return ExitCode::from(EXIT_BROKEN);
            }
        };
        let r = &result.record;
        progress.done(&format!(
            "{}::{}  {} (expected {}) {}  {:.1} s{}",
            r.case,
            r.arm,
            r.verdict,
            r.expected,
            if r.met { "met" } else { "NOT MET" },
            r.duration_s,
            if r.met {
                String::new()
            } else {
                format!("\n    {}", r.explanation)
            }
        ));
        unmet += usize::from(!r.met);
        broke |= result.lab_broke;
        if let Err(e) = run_dir.add(result.record) {
            eprintln!("error: writing {}: {e}", run_dir.dir.display());
            return ExitCode::from(EXIT_BROKEN);
        }
        kept = result.kept;
    }
    println!(
        "{} of {} arms met their expectation; report: {}",
        chosen.len() - unmet,
        chosen.len(),
        run_dir.dir.join("report.html").display()
    );
    if let Some(mut lab) = kept {
        // The socket lives where its path is short; the run folder gets a link to it.
        let socket = lab.socket_dir().join("shell.sock");
        let link = run_dir.dir.join("shell.sock");
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&socket, &link) {
            eprintln!("warning: linking {}: {e}", link.display());
        }
        eprintln!(
            "lab kept: `faultline shell GUEST --run {}` to enter a guest; Ctrl-C stops it",
            run_dir.dir.display()
        );
        rt.block_on(async {
            let limit = decision.accel.scale(std::time::Duration::from_secs(60));
            let _ = faultline::shell::serve(&mut lab, &socket, limit, async {
                stop_signal().await;
            })
            .await;
            let _ = std::fs::remove_file(&link);
            lab.stop().await;
        });
    }
    if broke {
        code = ExitCode::from(EXIT_BROKEN);
    } else if unmet > 0 {
        code = ExitCode::from(EXIT_FAILED);
    }
    code
}

/// SIGINT or SIGTERM; returns its name.
async fn stop_signal() -> &'static str {
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

fn report_cmd(run_dir: &std::path::Path) -> ExitCode {
    match faultline::results::RunRecord::load(run_dir) {
        Ok(r) => match r.write(run_dir) {
            Ok(()) => {
                println!("{}", run_dir.join("report.html").display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing into {}: {e}", run_dir.display());
                ExitCode::from(EXIT_BROKEN)
            }
        },
        Err(e) => {
            eprintln!("error: {}: {e}", run_dir.join("run.json").display());
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn shell_cmd(a: ShellArgs) -> ExitCode {
    // A link to the kept lab's socket (see `run --keep`); a dead link means the lab is gone.
    let link = a.run.join("shell.sock");
    let socket = std::fs::read_link(&link).unwrap_or(link);
    if !socket.exists() {
        eprintln!(
            "error: {} has no kept lab (start one with `faultline run CASE --arm ARM --keep`)",
            a.run.display()
        );
        return ExitCode::from(EXIT_INPUT);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let one = |cmd: &str| -> Result<i64, String> {
        let r = rt
            .block_on(faultline::shell::request(&socket, &a.guest, cmd))
            .map_err(|e| e.to_string())?;
        if let Some(e) = r.error {
            return Err(e);
        }
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        Ok(r.exit_code)
    };
    if let Some(c) = &a.command {
        return match one(c) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_BROKEN)
            }
        };
    }
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    loop {
        eprint!("{}# ", a.guest);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return ExitCode::SUCCESS;
        }
        let cmd = line.trim();
        if cmd.is_empty() {
            continue;
        }
        if let Err(e) = one(cmd) {
            eprintln!("error: {e}");
        }
    }
}
