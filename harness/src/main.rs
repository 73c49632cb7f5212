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
