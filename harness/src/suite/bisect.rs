//! `faultline bisect`'s search: over an ordered list of images, the first one on which an
//! arm's verdict differs from its verdict on the first image. The first and last images run
//! first; then a binary search between the last image known to agree with the first and the
//! first image known to differ.
//!
//! Only `pass` and `fail` steer the search. A step that ends `error` or `unknown` stops it:
//! an unknown is neither side of the change, and treating it as one would name the wrong
//! image.
//!
//! Architecture invariant: pure. [`Search`] says which image to run next from the verdicts
//! seen so far; running the arm (and building only the images it runs) is the command's.

use crate::case::{Arm, Case, Verdict};

/// How a bisect ended. Indices are into the image list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `first` is the first image whose verdict (`after`) differs from the first image's
    /// (`before`); `last_same`, the image before it, still had `before`.
    Changed {
        first: usize,
        last_same: usize,
        before: Verdict,
        after: Verdict,
    },
    /// The first and the last image gave the same verdict.
    NoChange { verdict: Verdict },
    /// Image `at` ended `error` or `unknown`: the search cannot go through it.
    Undecided { at: usize, verdict: Verdict },
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the arm on this image and [`Search::record`] its verdict.
    Run(usize),
    Done(Outcome),
}

/// A bisect over `n` images: the verdicts seen so far.
#[derive(Debug, Clone)]
pub struct Search {
    seen: Vec<Option<Verdict>>,
}

/// Whether a verdict can steer the search.
fn decisive(v: Verdict) -> bool {
    matches!(v, Verdict::Pass | Verdict::Fail)
}

impl Search {
    /// A search over `n` images; `None` for fewer than two.
    pub fn new(n: usize) -> Option<Search> {
        (n >= 2).then(|| Search { seen: vec![None; n] })
    }

    /// Record the verdict of image `i`.
    pub fn record(&mut self, i: usize, verdict: Verdict) {
        self.seen[i] = Some(verdict);
    }

    /// The next image to run, or how the search ended.
    pub fn next(&self) -> Next {
        let last = self.seen.len() - 1;
        let known = |i: usize| -> Result<Option<Verdict>, Outcome> {
            match self.seen[i] {
                Some(v) if !decisive(v) => Err(Outcome::Undecided { at: i, verdict: v }),
                v => Ok(v),
            }
        };
        let step = || -> Result<Next, Outcome> {
            let Some(before) = known(0)? else {
                return Ok(Next::Run(0));
            };
            match known(last)? {
                None => return Ok(Next::Run(last)),
                Some(v) if v == before => return Err(Outcome::NoChange { verdict: v }),
                Some(_) => {}
            }
            // seen[lo] == before, seen[hi] != before.
            let (mut lo, mut hi) = (0, last);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                match known(mid)? {
                    None => return Ok(Next::Run(mid)),
                    Some(v) if v == before => lo = mid,
                    Some(_) => hi = mid,
                }
            }
            Err(Outcome::Changed {
                first: hi,
                last_same: lo,
                before,
                after: self.seen[hi].expect("hi was run"),
            })
        };
        match step() {
            Ok(next) => next,
            Err(outcome) => Next::Done(outcome),
        }
    }
}

/// Run a whole search against `oracle` (image index → verdict): the images it ran, in order,
/// and how it ended. For tests and dry runs; the command steps [`Search`] itself.
pub fn run(n: usize, mut oracle: impl FnMut(usize) -> Verdict) -> Option<(Vec<usize>, Outcome)> {
    let mut s = Search::new(n)?;
    let mut ran = Vec::new();
    loop {
        match s.next() {
            Next::Run(i) => {
                ran.push(i);
                s.record(i, oracle(i));
            }
            Next::Done(o) => return Some((ran, o)),
        }
    }
}

/// Each image's label in a bisect's run (its arms are `<arm>@<label>`): the image's name, and
/// for the k-th time a name is listed again (k ≥ 2) `<name>.<k>`, so a list that repeats an
/// image (a check that the arm agrees with itself) still gives each step a record and folder
/// of its own. Recipe names have no `.`, so a label never is another image's name.
pub fn labels(images: &[String]) -> Vec<String> {
    images
        .iter()
        .enumerate()
        .map(|(k, i)| match images[..k].iter().filter(|j| *j == i).count() {
            0 => i.clone(),
            n => format!("{i}.{}", n + 1),
        })
        .collect()
}

/// The guest a bisect puts the images on when none is named: the only guest of `arm` whose
/// image (after the arm's `setup.images`) has the role `role` (that of the first image).
/// `role_of` gives an image's role from its recipe.
pub fn default_guest(
    case: &Case,
    arm: &Arm,
    role: &str,
    role_of: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let fits: Vec<&str> = case
        .guests
        .iter()
        .filter(|g| {
            let image = arm.setup.images.get(&g.name).unwrap_or(&g.image);
            role_of(image).as_deref() == Some(role)
        })
        .map(|g| g.name.as_str())
        .collect();
    match fits[..] {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no guest of {}::{} runs an image of role {role}: name one with --guest",
            case.name, arm.name
        )),
        _ => Err(format!(
            "guests {} of {}::{} all run an image of role {role}: name one with --guest",
            fits.join(", "),
            case.name,
            arm.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Error, Fail, Pass, Unknown};

    #[test]
    fn the_default_guest_is_the_only_one_of_the_first_images_role() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
        let case = crate::case::load(&file).unwrap();
        let arm = &case.arms[0];
        let role_of = |image: &str| Some(if image == "filer" { "filer" } else { "frontend" }.to_string());
        assert_eq!(default_guest(&case, arm, "filer", role_of), Ok("filer".into()));
        let e = default_guest(&case, arm, "frontend", role_of).unwrap_err();
        assert_eq!(
            e,
            "guests imap1, imap2 of smoke::baseline all run an image of role frontend: name one with --guest"
        );
        let e = default_guest(&case, arm, "router", role_of).unwrap_err();
        assert!(e.starts_with("no guest of smoke::baseline"), "{e}");
    }

    /// Pass up to image `k` (exclusive), fail from it.
    fn step_at(k: usize) -> impl Fn(usize) -> Verdict {
        move |i| if i < k { Pass } else { Fail }
    }

    #[test]
    fn a_repeated_image_gets_a_label_of_its_own() {
        let list: Vec<String> = ["a", "b", "a", "a"].map(String::from).to_vec();
        assert_eq!(labels(&list), ["a", "b", "a.2", "a.3"]);
    }

    #[test]
    fn fewer_than_two_images_cannot_be_bisected() {
        assert!(Search::new(0).is_none());
        assert!(Search::new(1).is_none());
    }

    #[test]
    fn the_first_and_last_images_run_first() {
        let (ran, _) = run(7, step_at(3)).unwrap();
        assert_eq!(&ran[..2], [0, 6]);
    }

    #[test]
    fn three_images_find_the_middle_change_in_three_steps() {
        // Unpatched, IMAP change only, both changes: the POP3 arm fails only with both.
        let (ran, o) = run(3, step_at(2)).unwrap();
        assert_eq!(ran, [0, 2, 1]);
        assert_eq!(
            o,
            Outcome::Changed {
                first: 2,
                last_same: 1,
                before: Pass,
                after: Fail
            }
        );
    }

    #[test]
    fn every_change_point_is_found_in_logarithmic_steps() {
        for n in 2..40usize {
            for k in 1..n {
                let (ran, o) = run(n, step_at(k)).unwrap();
                assert_eq!(
                    o,
                    Outcome::Changed {
                        first: k,
                        last_same: k - 1,
                        before: Pass,
                        after: Fail
                    },
                    "n={n} k={k}"
                );
                let bound = 2 + (usize::BITS - (n - 1).leading_zeros()) as usize;
                assert!(ran.len() <= bound, "n={n} k={k}: {ran:?}");
                let mut once = ran.clone();
                once.dedup();
                assert_eq!(once.len(), ran.len(), "no image runs twice");
            }
        }
    }

    #[test]
    fn a_change_from_fail_to_pass_is_a_change_too() {
        let (_, o) = run(5, |i| if i < 4 { Fail } else { Pass }).unwrap();
        assert!(matches!(
            o,
            Outcome::Changed {
                first: 4,
                before: Fail,
                after: Pass,
                ..
            }
        ));
    }

    #[test]
    fn the_same_verdict_at_both_ends_is_no_change_after_two_steps() {
        let (ran, o) = run(6, |_| Pass).unwrap();
        assert_eq!(ran, [0, 5]);
        assert_eq!(o, Outcome::NoChange { verdict: Pass });
    }

    #[test]
    fn an_unknown_or_error_stops_the_search_where_it_happened() {
        let (ran, o) = run(4, |i| if i == 0 { Unknown } else { Pass }).unwrap();
        assert_eq!(ran, [0], "nothing runs after an undecided first image");
        assert_eq!(
            o,
            Outcome::Undecided {
                at: 0,
                verdict: Unknown
            }
        );
        let (_, o) = run(4, |i| if i == 3 { Error } else { Pass }).unwrap();
        assert_eq!(
            o,
            Outcome::Undecided {
                at: 3,
                verdict: Error
            }
        );
        // In the middle: never read as a pass or a fail.
        let (ran, o) = run(5, |i| match i {
            0 | 1 => Pass,
            2 => Unknown,
            _ => Fail,
        })
        .unwrap();
        assert_eq!(ran, [0, 4, 2]);
        assert_eq!(
            o,
            Outcome::Undecided {
                at: 2,
                verdict: Unknown
            }
        );
    }
}
