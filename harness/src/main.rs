//! The `faultline` command: the command line parsed, one library command called, and what it
//! ended with turned into an exit code (README.md's table, [`faultline::exit::Exit`]). A
//! command that stops early is one `error: …` line (more for a guest's QEMU output).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use faultline::command_error::CommandError;
use faultline::commands;
use faultline::console::Terminal;

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
    /// The image cache: list its entries, or prune those the current recipes do not need.
    Cache {
        #[command(subcommand)]
        command: CacheCmd,
    },
    /// Start the three-guest lab (filer, imap1, imap2) from saved state and keep it up.
    Lab(LabArgs),
    /// Measure guest start, switch throughput and switch frame rate side by side.
    Bench(LabArgs),
    /// List every case::arm with its expected verdict (reads case files only).
    List(ListArgs),
    /// Run cases' arms in the lab and write results/<run-id>/.
    Run(RunArgs),
    /// Make report.html and junit.xml of a run folder again from its run.json; with
    /// --vendor, write one arm's bundle for its vendor instead.
    Report {
        /// The run folder.
        #[arg(default_value = "results/latest")]
        run_dir: PathBuf,
        /// One arm (CASE::ARM) as a folder and .tar.gz to send a vendor: summary, cut
        /// pcapng, cited log lines, rerun commands.
        #[arg(long, value_name = "CASE::ARM")]
        vendor: Option<String>,
        /// Where the vendor bundle goes (default: RUN_DIR/vendor).
        #[arg(long, value_name = "DIR", requires = "vendor")]
        out: Option<PathBuf>,
    },
    /// Run commands in a guest of a lab kept by `faultline run --keep`.
    Shell(ShellArgs),
    /// Make one run folder of several (shards of `run --partition`, or reruns).
    Merge(MergeArgs),
    /// Find the first image of an ordered list on which an arm's verdict changes.
    Bisect(BisectArgs),
}

#[derive(clap::Args)]
struct BisectArgs {
    #[command(flatten)]
    common: Common,
    /// The arm, as CASE::ARM.
    #[arg(value_name = "CASE::ARM")]
    target: String,
    /// The images, in order (e.g. unpatched, first patch, both patches).
    #[arg(long, value_name = "A,B,C...")]
    images: String,
    /// The guest that runs each image (default: the only one whose image has A's role).
    #[arg(long)]
    guest: Option<String>,
    #[arg(long, default_value = faultline::suite::CASES_DIR)]
    cases_dir: PathBuf,
    /// Where run folders go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The run folders to merge.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The merged run folder (must not exist, or be empty).
    #[arg(long, conflicts_with = "results")]
    out: Option<PathBuf>,
    /// Otherwise a new merged-<time> folder here (and `latest` pointed at it).
    #[arg(long, default_value = "results")]
    results: PathBuf,
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
    /// Only arms of these names (a comma list, e.g. 2008-fin,unpatched-fin).
    #[arg(long)]
    arm: Option<String>,
    /// Keep the last arm's lab up afterwards for `faultline shell` (until Ctrl-C).
    #[arg(long)]
    keep: bool,
    /// Run only the K-th of N slices of the selected arms, e.g. 1/2.
    #[arg(long)]
    partition: Option<faultline::suite::Partition>,
    /// How many arms at once, each in a lab of its own: a number, or `auto` (from cores
    /// and memory).
    #[arg(short, long, default_value = "1")]
    jobs: faultline::suite::Jobs,
    /// Where run folders go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Run on other images than the case files name: NAME is a guest (imap1) or an image
    /// (frontend: every guest running it); a comma list runs each arm once per image.
    #[arg(long = "image", value_name = "NAME=IMAGE[,IMAGE...]")]
    images: Vec<String>,
    /// Run each selected case's [sweep] instead of its arms: the swept arm once per scale
    /// (ARM@xSCALE), measured against the cascade model (run.json `sweeps`, the report).
    #[arg(long)]
    sweep: bool,
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
    fn resolve(self) -> commands::Common {
        commands::Common {
            cache: self.cache.unwrap_or_else(faultline::images::cache::default_root),
            recipes: self.recipes,
            accel: self.accel,
        }
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

impl From<LabArgs> for commands::LabOptions {
    fn from(a: LabArgs) -> Self {
        commands::LabOptions {
            common: a.common.resolve(),
            dir: a.dir,
            mounted: a.mounted,
            seconds: a.seconds,
        }
    }
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

#[derive(clap::Args)]
struct PruneArgs {
    #[command(flatten)]
    common: Common,
    /// Also keep the K most recently used entries of each kind and name.
    #[arg(long, value_name = "K")]
    keep_newest: Option<usize>,
    /// Then remove least recently used entries until the cache is at most this big (500M,
    /// 20G, ...); entries the recipes need go last.
    #[arg(long, value_name = "SIZE", value_parser = faultline::prune::parse_size)]
    max_size: Option<u64>,
    /// Only print what would be removed.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Every entry: kind, name, key, size, last use, and whether the current recipes need it.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Remove the entries the current recipes do not need (entries in use are skipped).
    Prune(PruneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plain = Terminal::plain();
    let ended = match cli.command {
        Cmd::Images { command } => match command {
            ImagesCmd::Build(a) => commands::build_images(&a.common.resolve(), &a.names, &plain),
            ImagesCmd::Check(a) => commands::check_images(&a.common.resolve(), &a.names, &plain),
            ImagesCmd::List(a) => commands::list_images(&a.common.resolve(), &a.names, &plain),
        },
        Cmd::Cache { command } => match command {
            CacheCmd::List { common } => commands::list_cache(&common.resolve(), &plain),
            CacheCmd::Prune(a) => {
                let o = commands::PruneOptions {
                    policy: faultline::prune::Policy {
                        keep_newest: a.keep_newest,
                        max_bytes: a.max_size,
                    },
                    dry_run: a.dry_run,
                };
                commands::prune_cache(&a.common.resolve(), o, &plain)
            }
        },
        Cmd::Lab(a) => commands::lab(&a.into(), &plain),
        Cmd::Bench(a) => commands::bench(&a.into(), &plain),
        Cmd::List(a) => commands::list(&a.cases, &a.cases_dir, &plain),
        Cmd::Run(a) => {
            let o = commands::RunOptions {
                common: a.common.resolve(),
                cases: a.cases,
                cases_dir: a.cases_dir,
                arm: a.arm,
                keep: a.keep,
                partition: a.partition,
                jobs: a.jobs,
                results: a.results,
                images: a.images,
                sweep: a.sweep,
            };
            commands::run(&o, &Terminal::timed())
        }
        Cmd::Report {
            run_dir,
            vendor: Some(name),
            out,
        } => commands::vendor_report(&run_dir, &name, out.as_deref(), &plain),
        Cmd::Report { run_dir, .. } => commands::report(&run_dir, &plain),
        Cmd::Merge(a) => {
            let o = commands::MergeOptions {
                dirs: a.dirs,
                out: a.out,
                results: a.results,
            };
            commands::merge(&o, &plain)
        }
        Cmd::Bisect(a) => {
            let o = commands::BisectOptions {
                common: a.common.resolve(),
                target: a.target,
                images: a.images,
                guest: a.guest,
                cases_dir: a.cases_dir,
                results: a.results,
            };
            commands::bisect(&o, &Terminal::timed())
        }
        Cmd::Shell(a) => {
            let o = commands::ShellOptions {
                guest: a.guest,
                run: a.run,
                command: a.command,
            };
            return exit(commands::shell(
                &o,
                std::io::stdin().lock(),
                std::io::stdout(),
                std::io::stderr(),
            ));
        }
    };
    exit(ended.map(|e| e.code()))
}

/// What a command ended with as the process's exit code; an error as its one message first.
fn exit(ended: Result<u8, CommandError>) -> ExitCode {
    match ended {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
