//! The custom-kernel trial: an image that boots a kernel the recipes do not install, built,
//! booted and run under a lock case's arm, as README.md's "your own kernel" promises.
//!
//! Debian's generic kernel flavour stands in for a kernel a user built: the same release as
//! the cloud kernel `images/common.toml` pins (so the trial follows the pin), fetched with
//! `apt-get download`, unpacked with `dpkg-deb -x` into a complete-or-absent entry under the
//! cache root (`kernels/<package>_<version>/`), and named by a recipe that includes
//! `images/filer.toml` and sets `[kernel]` to the unpacked files. The filer is the guest that
//! runs it: its lockd and nfsd are kernel code, so the lock case exercises the kernel itself.
//!
//! Everything goes through the library (image build into the normal cache, image check,
//! runner), so a second run finds the kernel, the image and the saved states in the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use libtest_mimic::Failed;

use faultline::hosttools::{self, Tool};
use faultline::recipe::{Kernel, Recipe};
use faultline::store::Store;
use faultline::{accel, case, images, run, suite};

use super::project_root;

/// The trial's name in `cargo test --test vm`.
pub const TRIAL: &str = "images::custom_kernel_filer_boots_and_meets_a_lock_arm";

/// The image the trial builds (a name no project recipe uses).
const IMAGE: &str = "filer-generic-kernel";
/// The lock case arm run on it, and the guest whose image it replaces.
const CASE: &str = "nlm-grant-lost";
const ARM: &str = "baseline";
const GUEST: &str = "filer";

const APT_GET: Tool = Tool {
    program: "apt-get",
    package: "apt",
};
const DPKG_DEB: Tool = Tool {
    program: "dpkg-deb",
    package: "dpkg",
};

/// What the trial needs on the host beyond the lab's QEMU: Debian's tools to fetch and unpack
/// the kernel, and the image builder's.
pub fn host_tools() -> Result<(), String> {
    hosttools::require(&[
        APT_GET,
        DPKG_DEB,
        hosttools::MMDEBSTRAP,
        hosttools::MKFS_EXT4,
        hosttools::QEMU_IMG,
    ])
    .map_err(|e| e.to_string())
}

/// The generic flavour of the filer's pinned cloud kernel: its package, version and release.
struct Generic {
    package: String,
    version: String,
    release: String,
}

fn generic_of(filer: &Recipe) -> Result<Generic, String> {
    let Kernel::Debian { package, .. } = &filer.kernel else {
        return Err("the filer recipe does not boot a Debian kernel package".into());
    };
    let version = filer
        .packages
        .get(package)
        .ok_or(format!("{package} is not pinned"))?
        .clone();
    let package = package
        .strip_suffix("-cloud-amd64")
        .map(|base| format!("{base}-amd64"))
        .ok_or(format!("{package} is not a -cloud-amd64 kernel"))?;
    let release = package.trim_start_matches("linux-image-").to_string();
    Ok(Generic {
        package,
        version,
        release,
    })
}

/// The unpacked kernel package (`boot/`, `lib/modules/<release>/`), fetched on first use.
fn unpacked_kernel(cache: &Path, k: &Generic) -> Result<PathBuf, String> {
    let store = Store::new(cache.join("kernels"));
    let name = format!("{}_{}", k.package, k.version);
    let entry = store.entry(&name);
    if entry.is_dir() {
        return Ok(entry);
    }
    let lock = store.lock(&name).map_err(|e| format!("locking {name}: {e}"))?;
    if entry.is_dir() {
        return Ok(entry);
    }
    let work = lock.work().map_err(|e| format!("work folder for {name}: {e}"))?;
    let t = Instant::now();
    run_tool(
        Command::new("apt-get")
            .args(["download", "-q"])
            .arg(format!("{}={}", k.package, k.version))
            .current_dir(work.path()),
    )
    .map_err(|e| {
        format!(
            "{e}\nhint: the trial fetches Debian 12's {} {} with apt (bookworm-security in apt's sources, `apt-get update` done)",
            k.package, k.version
        )
    })?;
    let deb = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    run_tool(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(work.path().join("tree")),
    )?;
    let dir = work
        .publish("tree")
        .map_err(|e| format!("publishing {name}: {e}"))?;
    eprintln!(
        "kernel {} {} fetched and unpacked in {:.1} s: {}",
        k.package,
        k.version,
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(dir)
}

fn run_tool(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The recipe a user would write: the project's filer, booting the unpacked kernel.
fn recipe_text(filer_toml: &Path, kernel: &Path, release: &str) -> String {
    let q = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
    format!(
        "name = \"{IMAGE}\"\nrole = \"filer\"\ninclude = [{}]\n\n[kernel]\nvmlinuz = {}\nconfig = {}\nmodules = {}\nversion = \"{release}\"\n",
        q(filer_toml.to_path_buf()),
        q(kernel.join(format!("boot/vmlinuz-{release}"))),
        q(kernel.join(format!("boot/config-{release}"))),
        q(kernel.join(format!("lib/modules/{release}"))),
    )
}

/// Build the image (a cache hit after the first run), boot it and check it, then run the
/// lock case's arm with the filer on it.
pub fn trial() -> Result<(), Failed> {
    let root = project_root();
    let cache = images::cache::default_root();
    let mut recipes = images::load_recipes(&root.join("images"), &[]).map_err(|e| e.to_string())?;
    let filer = recipes
        .iter()
        .find(|r| r.name == "filer")
        .ok_or("no filer recipe")?;
    let k = generic_of(filer)?;
    assert!(
        !k.release.ends_with("-cloud-amd64"),
        "{}: the trial must not boot the default flavour",
        k.release
    );
    let kernel = unpacked_kernel(&cache, &k)?;

    let dir = tempfile::Builder::new()
        .prefix("faultline-custom-kernel-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let recipe_path = dir.path().join(format!("{IMAGE}.toml"));
    std::fs::write(
        &recipe_path,
        recipe_text(&root.join("images/filer.toml"), &kernel, &k.release),
    )
    .map_err(|e| e.to_string())?;
    let recipe = faultline::recipe::load(&recipe_path).map_err(|e| e.to_string())?;
    assert_eq!(recipe.kernel.release(), k.release);
    // README: the Debian kernel package stays installed, for its tools; it is not booted.
    let Kernel::Debian { package: cloud, .. } = &filer.kernel else {
        unreachable!("checked by generic_of")
    };
    assert!(recipe.packages.contains_key(cloud), "{cloud} is still pinned");

    let t = Instant::now();
    let built = images::build(&recipe, &cache, &mut |l| eprintln!("{l}")).map_err(|e| e.to_string())?;
    eprintln!(
        "image {IMAGE}: {} in {:.1} s ({})",
        if built.cache_hit { "cache hit" } else { "built" },
        t.elapsed().as_secs_f64(),
        built.image.dir.display()
    );
    let image = built.image;
    let on_disk: images::Manifest = serde_json::from_str(
        &std::fs::read_to_string(image.dir.join("manifest.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    assert_eq!(
        on_disk.kernel_release, k.release,
        "manifest.json's kernel_release"
    );
    assert!(
        on_disk.packages.contains_key(cloud),
        "the Debian cloud kernel package is installed"
    );

    // Boot it cold: the kernel, the role's services (nfs-server, rpc-statd) and packages.
    let decision = accel::decide(None, Some(&image.kernel()));
    let rt = suite::runtime();
    let report = rt
        .block_on(images::check::check(&image, decision.accel, dir.path()))
        .map_err(|e| e.to_string())?;
    eprintln!("{}", images::check::summary(&report));
    assert_eq!(report.kernel_release, k.release, "uname -r in the guest");
    if !report.passed() {
        return Err(images::check::summary(&report).into());
    }

    // The lock case's arm with the filer on the custom kernel.
    let case = case::load(&root.join(format!("cases/{CASE}.toml"))).map_err(|e| e.to_string())?;
    let mut arm = case.arm(ARM).ok_or(format!("{CASE} has no arm {ARM}"))?.clone();
    arm.setup.images.insert(GUEST.into(), IMAGE.into());
    recipes.push(recipe);
    let imgs: BTreeMap<String, images::Image> =
        run::arm_images(&case, &arm, &recipes, &cache, false, &mut |l| eprintln!("{l}"))?;
    assert_eq!(imgs[GUEST].manifest.kernel_release, k.release);
    let mut runner = suite::Runner::create(
        dir.path(),
        "custom-kernel-",
        decision.accel,
        cache.clone(),
        format!("cargo test --test vm -- {TRIAL} --exact"),
    )
    .map_err(|e| e.to_string())?;
    runner.add_versions(&imgs.values().collect::<Vec<_>>());
    let never = std::future::pending::<&'static str>();
    let name = format!("{CASE}::{ARM}");
    let ran = rt
        .block_on(runner.arm(
            &case,
            &arm,
            &faultline::suite::Variant::default(),
            &imgs,
            false,
            never,
            &mut |l| eprintln!("  {name}: {l}"),
        ))
        .unwrap_or_else(|_| unreachable!("only a signal interrupts an arm, and this trial waits for none"));
    let r = ran.record.clone();
    runner.record(ran).map_err(|e| e.to_string())?;
    let versions = &runner.run_dir.record.versions;
    eprintln!(
        "  {name} on {IMAGE}: {} (expected {}), {:.1} s (lab ready {:.1} s, workload {:.1} s)",
        r.verdict, r.expected, r.duration_s, r.lab_ready_s, r.workload_s
    );
    let recorded = versions.get(&format!("{IMAGE}.kernel")).cloned();
    let result = if !r.met {
        Err(format!(
            "{name} on {IMAGE}: {} (expected {}): {}",
            r.verdict, r.expected, r.explanation
        ))
    } else if recorded.as_deref() != Some(k.release.as_str()) {
        Err(format!(
            "run.json records {IMAGE}.kernel = {recorded:?}, not {}",
            k.release
        ))
    } else {
        Ok(())
    };
    if result.is_err() {
        eprintln!("trial files kept in {}", dir.keep().display());
    }
    result.map_err(Failed::from)
}
