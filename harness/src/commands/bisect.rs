//! `faultline bisect CASE::ARM --images A,B,C…`: the first image in an ordered list on which
//! an arm's verdict differs from its verdict on the first image. One guest (`--guest`, or the
//! only one whose image has image A's role) gets each image in turn; each step is an arm
//! `<arm>@<image>` of one ordinary run folder, so the run's variants table and report show
//! every step.
//!
//! Architecture invariant: the search is `suite::bisect` (pure); this command only runs what
//! it asks for, building an image only when the search reaches it. Bad input is exit 2 before
//! anything is built or started; an `error` or `unknown` step stops the search (exit 3),
//! never read as a pass or a fail.

use std::path::PathBuf;
use std::time::Instant;

use crate::case::Verdict;
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images;
use crate::suite::bisect::{self, Next, Outcome, Search};
use crate::suite::{self, overrides, Interrupted, Runner, Variant};
use crate::{hosttools, run};

/// What `faultline bisect` was asked for.
#[derive(Debug, Clone)]
pub struct BisectOptions {
    pub common: super::Common,
    /// `CASE::ARM`.
    pub target: String,
    /// The ordered image list, comma-separated as given.
    pub images: String,
    /// The guest that gets each image (default: the only one of image A's role).
    pub guest: Option<String>,
    pub cases_dir: PathBuf,
    /// Where run folders go.
    pub results: PathBuf,
}

/// `faultline bisect`: exit 0 when it found the image where the verdict changes, 1 when the
/// first and last images agree, 3 when a step ended `error` or `unknown` (or a lab broke, or
/// a signal stopped it).
pub fn bisect(o: &BisectOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let input = |m: String| CommandError::Input(m);
    let (case_name, arm_name) = o
        .target
        .split_once("::")
        .filter(|(c, a)| !c.is_empty() && !a.is_empty())
        .ok_or_else(|| input(format!("`{}`: bisect takes one CASE::ARM", o.target)))?;
    let list = overrides::image_list(&o.images).map_err(|e| input(format!("--images {}: {e}", o.images)))?;
    let mut search = Search::new(list.len()).ok_or_else(|| {
        input(format!(
            "--images {}: bisect needs at least two images, in order",
            o.images
        ))
    })?;
    let files = suite::case_files(&[case_name.to_string()], &o.cases_dir).map_err(input)?;
    let cases = suite::load_cases(&files)?;
    let case = &cases[0];
    let arm = case
        .arm(arm_name)
        .ok_or_else(|| input(format!("case {} has no arm named {arm_name}", case.name)))?;
    let recipes = images::load_recipes(&o.common.recipes, &[])?;
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    if let Some(i) = list.iter().find(|i| !names.contains(&i.as_str())) {
        return Err(input(format!(
            "--images: no image recipe named {i} (known: {})",
            names.join(", ")
        )));
    }
    let role_of = |image: &str| recipes.iter().find(|r| r.name == image).map(|r| r.role.clone());
    let guest = match &o.guest {
        Some(g) if case.guests.iter().any(|x| &x.name == g) => g.clone(),
        Some(g) => {
            return Err(input(format!(
                "--guest {g}: case {} has no such guest",
                case.name
            )))
        }
        None => {
            let role = role_of(&list[0]).expect("checked above");
            bisect::default_guest(case, arm, &role, role_of).map_err(input)?
        }
    };
    hosttools::require(&[hosttools::QEMU_SYSTEM, hosttools::QEMU_IMG])?;
    let cache = &o.common.cache;
    let labels = bisect::labels(&list);
    let variant = |i: usize| Variant {
        picks: vec![(guest.clone(), list[i].clone())],
        label: Some(labels[i].clone()),
    };
    // Only the images the search reaches are built, as `run` builds a missing one.
    let images_of = |i: usize| {
        let named = overrides::apply(case, arm, &variant(i).picks);
        run::images_named(&named, &recipes, cache, true, &mut |l| console.progress(l))
            .map_err(|e| CommandError::Broken(format!("{}: {e}", list[i])))
    };
    let Next::Run(first) = search.next() else {
        unreachable!("a new search runs an image first")
    };
    let first_images = images_of(first)?;
    let decision = suite::decide_accel(o.common.accel, first_images.values().next(), console);
    let rerun = format!(
        "faultline bisect {}::{} --images {} --guest {guest} --accel {}",
        case.name,
        arm.name,
        o.images,
        decision.accel.as_str()
    );
    let mut runner =
        Runner::create(&o.results, "bisect-", decision.accel, cache.clone(), rerun).map_err(|e| {
            CommandError::Broken(format!("creating the run folder in {}: {e}", o.results.display()))
        })?;
    console.note(&format!("results: {}", runner.run_dir.dir.display()));
    console.note(&format!(
        "bisecting {}::{} over {} images on guest {guest}",
        case.name,
        arm.name,
        list.len()
    ));
    let rt = suite::runtime();
    let mut pending = Some((first, first_images));
    let mut step = 0;
    let outcome = loop {
        let (i, imgs) = match (pending.take(), search.next()) {
            (Some(p), _) => p,
            (None, Next::Run(i)) => (i, images_of(i)?),
            (None, Next::Done(outcome)) => break outcome,
        };
        step += 1;
        runner.add_versions(&imgs.values().collect::<Vec<_>>());
        let v = variant(i);
        let started = Instant::now();
        let mut say = |l: &str| console.progress(&format!("[step {step}] {l}"));
        say(&format!("{}::{}", case.name, v.arm_id(&arm.name)));
        let ran = match rt.block_on(runner.arm(case, arm, &v, &imgs, false, suite::stop_signal(), &mut say)) {
            Ok(r) => r,
            Err(Interrupted(signal)) => {
                console.note(&format!(
                    "\ninterrupted by {signal}: partial results in {}",
                    runner.run_dir.dir.display()
                ));
                return Ok(Exit::Broken);
            }
        };
        let verdict = ran.record.verdict;
        let explanation = ran.record.explanation.clone();
        runner.record(ran)?;
        console.done(&format!(
            "step {step}: {}  {verdict}  {:.1} s{}",
            list[i],
            started.elapsed().as_secs_f64(),
            if matches!(verdict, Verdict::Pass | Verdict::Fail) {
                String::new()
            } else {
                format!("\n    {explanation}")
            }
        ));
        search.record(i, verdict);
    };
    let report = runner.run_dir.dir.join("report.html");
    match outcome {
        Outcome::Changed {
            first,
            last_same,
            before,
            after,
        } => {
            console.out(&format!(
                "first change: {} ({after}); {} before it: {before}; report: {}",
                list[first],
                list[last_same],
                report.display()
            ));
            Ok(Exit::Ok)
        }
        Outcome::NoChange { verdict } => {
            console.out(&format!(
                "no change: {verdict} on {} and on {}; report: {}",
                list[0],
                list[list.len() - 1],
                report.display()
            ));
            Ok(Exit::Failed)
        }
        Outcome::Undecided { at, verdict } => {
            console.out(&format!(
                "cannot bisect through an {verdict}: {} ended {verdict}, so the search stops there; report: {}",
                list[at],
                report.display()
            ));
            Ok(Exit::Broken)
        }
    }
}
