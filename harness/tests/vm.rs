//! VM tests: every trial boots real QEMU guests from the built images.
//!
//! Listing (`--list`, as cargo-nextest does) only reads recipes and the image cache: nothing
//! boots, and nothing but the list goes to stdout. A trial whose prerequisites are missing
//! (no QEMU, an image not built) is listed as ignored, and the reason goes to stderr.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use faultline::{accel, hosttools, images};

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
    let cache = images::cache::default_root();
    let recipes =
        images::load_recipes(&project_root().join("images"), &[]).expect("the project's image recipes load");
    let qemu = hosttools::require(&[hosttools::QEMU_SYSTEM, hosttools::QEMU_IMG]).err();
    for recipe in recipes {
        let name = format!("images::check::{}", recipe.name);
        let missing = match (&qemu, images::lookup(&recipe, &cache)) {
            (Some(e), _) => Err(e.to_string()),
            (None, Err(e)) => Err(e.to_string()),
            (None, Ok(image)) => Ok(image),
        };
        match missing {
            Ok(image) => trials.push(Trial::test(name, move || check_image(&image))),
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
    libtest_mimic::run(&args, trials).exit();
}

/// Boot the image and require that it matches its manifest.
fn check_image(image: &images::Image) -> Result<(), Failed> {
    let decision = accel::decide(None, Some(&image.kernel()));
    let work = tempfile::Builder::new()
        .prefix("faultline-vmtest-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
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
