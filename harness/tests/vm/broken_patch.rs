//! A patch that does not apply to a source variant: one input error naming the patch and the
//! hunk, in seconds, and nothing built or published. Runs the real build path (the build
//! root's chroot, `dpkg-source -x`, GNU patch) against the cached base of the project's
//! Dovecot source, which `make images` builds first.

use std::path::Path;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use faultline::images::{self, BuildError};
use faultline::recipe;

pub const TRIAL: &str = "images::a_patch_that_does_not_apply_is_one_error_naming_the_hunk";

/// Ready when the project's 2008 variant is built: then the base it shares is cached too.
pub fn ready(project: &Path, cache: &Path) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("source builds need root".into());
    }
    let r = recipe::load(&project.join("images/frontend-2008.toml")).map_err(|e| e.to_string())?;
    images::lookup(&r, cache).map(|_| ()).map_err(|e| e.to_string())
}

pub fn trial(project: &Path, cache: &Path) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let good = std::fs::read_to_string(
        project.join("images/patches/dovecot/2008-pop3-sizes-lost-without-quit.patch"),
    )?;
    // The pop3 file's second hunk no longer matches: one context line changed.
    let broken = good.replacen(
        "\t\t/* client didn't QUIT, but we still want to save any changes",
        "\t\t/* client did not QUIT, but we still want to save any changes",
        1,
    );
    if broken == good {
        return Err("the patch no longer has the line this trial breaks".into());
    }
    let patch = dir.path().join("broken-pop3.patch");
    std::fs::write(&patch, broken)?;
    let images_dir = project.join("images");
    let recipe_path = dir.path().join("frontend-broken.toml");
    std::fs::write(
        &recipe_path,
        format!(
            "name = \"frontend-broken\"\ninclude = [{:?}, {:?}]\n[source]\npatches = [{:?}, {:?}]\n",
            images_dir.join("frontend.toml"),
            images_dir.join("dovecot-source.toml"),
            images_dir.join("patches/dovecot/2008-imap-fetch-work-lost-on-disconnect.patch"),
            patch
        ),
    )?;
    let r = recipe::load(&recipe_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let err = match images::build(&r, cache, &mut |l| eprintln!("  {l}")) {
        Ok(_) => return Err("a recipe with a broken patch built".into()),
        Err(e) => e,
    };
    let took = started.elapsed();
    let text = err.to_string();
    eprintln!("  {text} ({:.1} s)", took.as_secs_f64());
    match &err {
        BuildError::Patch {
            patch: p, failure, ..
        } => {
            if !p.ends_with("broken-pop3.patch") {
                return Err(format!("the error names {p}, not the broken patch").into());
            }
            if !failure.contains("src/pop3/pop3-client.c: Hunk #") || !failure.contains("FAILED") {
                return Err(format!("the error does not name the file and hunk: {failure}").into());
            }
        }
        other => return Err(format!("expected a patch error, got: {other}").into()),
    }
    if err.exit_code() != 2 {
        return Err(format!("exit code {} for a broken patch, not 2", err.exit_code()).into());
    }
    if text.lines().count() != 1 {
        return Err(format!("not one line: {text}").into());
    }
    if took > Duration::from_secs(120) {
        return Err(format!("a broken patch took {took:?} to report: something was compiled").into());
    }
    // Nothing published: no image and no packages for this recipe.
    if images::lookup(&r, cache).is_ok() {
        return Err("an image was published".into());
    }
    let spec = r.source.as_ref().expect("the recipe has a source");
    if images::source::lookup(&r, spec, cache)?.is_some() {
        return Err("packages were published".into());
    }
    Ok(())
}
