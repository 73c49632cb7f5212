//! `faultline images build | check | list`: the named images (by recipe name; none: all).
//!
//! Architecture invariant: a bad recipe or an unknown name stops the command before anything
//! is built or booted (exit 2). `build` goes on past an image that fails and ends with the last
//! failure's code; `check` stops at the first guest that breaks and keeps its files.

use std::time::Instant;

use super::Common;
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images::{self, check, Image};
use crate::recipe::Recipe;

fn recipes(common: &Common, names: &[String]) -> Result<Vec<Recipe>, CommandError> {
    Ok(images::load_recipes(&common.recipes, names)?)
}

/// `faultline images build`: every image whose recipe changed (a cache hit is instant).
pub fn build_images(common: &Common, names: &[String], console: &dyn Console) -> Result<Exit, CommandError> {
    let recipes = recipes(common, names)?;
    let start = Instant::now();
    let results = images::build_all(&recipes, &common.cache, &|l| console.note(l));
    let mut exit = Exit::Ok;
    for (r, result) in recipes.iter().zip(results) {
        match result {
            Ok(b) => console.out(&format!(
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
            )),
            Err(e) => {
                console.note(&format!("error: {e}"));
                exit = Exit::try_from(e.exit_code()).unwrap_or(Exit::Broken);
            }
        }
    }
    console.note(&format!("images: {:.2} s in all", start.elapsed().as_secs_f64()));
    Ok(exit)
}

/// `faultline images list`: each image's cache entry, or why there is none.
pub fn list_images(common: &Common, names: &[String], console: &dyn Console) -> Result<Exit, CommandError> {
    for r in &recipes(common, names)? {
        match images::lookup(r, &common.cache) {
            Ok(img) => console.out(&format!(
                "{}\t{}\t{}",
                r.name,
                img.manifest.recipe_hash,
                img.dir.display()
            )),
            Err(e) => console.out(&format!("{}\t-\t{e}", r.name)),
        }
    }
    Ok(Exit::Ok)
}

/// `faultline images check`: boot each built image and compare it with its manifest.
pub fn check_images(common: &Common, names: &[String], console: &dyn Console) -> Result<Exit, CommandError> {
    let recipes = recipes(common, names)?;
    let built = recipes
        .iter()
        .map(|r| images::lookup(r, &common.cache))
        .collect::<Result<Vec<Image>, _>>()?;
    let decision = crate::suite::decide_accel(common.accel, built.first(), console);
    let work = tempfile::Builder::new()
        .prefix("faultline-check-")
        .tempdir()
        .map_err(|e| CommandError::Broken(format!("creating a work folder: {e}")))?;
    let rt = crate::suite::runtime();
    let mut exit = Exit::Ok;
    for image in &built {
        match rt.block_on(check::check(image, decision.accel, work.path())) {
            Ok(r) => {
                console.out(&check::summary(&r));
                if !r.passed() {
                    exit = Exit::Failed;
                }
            }
            Err(source) => {
                let kept = work.keep();
                return Err(CommandError::Check { source, kept });
            }
        }
    }
    Ok(exit)
}
