//! `--image NAME=IMAGE[,IMAGE…]`: running a case's arms on other images than the case file
//! names, without editing it. Parsing, checking against the selected cases and the recipes,
//! expanding lists into variants (one run of each arm per image, the cross product when
//! several names have lists), applying one variant to an arm, and the `--image` words a rerun
//! needs.
//!
//! NAME is a guest name (`imap1`) or an image name (`frontend`: every guest whose image, after
//! the arm's own `setup.images`, is `frontend`); a guest name wins over an image name.
//!
//! Architecture invariant: pure. Recipes and cases come in as data; nothing is read, built or
//! started here, so a bad `--image` is found before anything is.

use std::collections::BTreeMap;

use crate::case::{Arm, Case};

/// One `--image NAME=IMAGE[,IMAGE…]` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOverride {
    /// A guest name or an image name.
    pub name: String,
    /// One image, or several (each arm then runs once per image).
    pub images: Vec<String>,
}

impl std::str::FromStr for ImageOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--image `{s}`: {why} (expected NAME=IMAGE[,IMAGE...])");
        let (name, list) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
        if !is_name(name) {
            return Err(bad(
                "NAME must be a guest or image name (lower-case letters, digits, '-', '_')",
            ));
        }
        let images = image_list(list).map_err(|e| bad(&e))?;
        // The same image twice would be two variants with one name.
        for (k, i) in images.iter().enumerate() {
            if images[..k].contains(i) {
                return Err(bad(&format!("image {i} is listed twice")));
            }
        }
        Ok(ImageOverride {
            name: name.to_string(),
            images,
        })
    }
}

impl std::fmt::Display for ImageOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.images.join(","))
    }
}

/// A comma-separated list of image names (`--image`'s and `bisect --images`'); the error
/// says what is wrong with it.
pub fn image_list(list: &str) -> Result<Vec<String>, String> {
    let images: Vec<String> = list.split(',').map(str::to_string).collect();
    if let Some(i) = images.iter().find(|i| !is_name(i)) {
        return Err(format!(
            "{i:?} is not an image name (lower-case letters, digits and '-')"
        ));
    }
    Ok(images)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parse every `--image` value; the first bad one (or a NAME given twice) is the error.
pub fn parse(values: &[String]) -> Result<Vec<ImageOverride>, String> {
    let mut out: Vec<ImageOverride> = Vec::new();
    for v in values {
        let o: ImageOverride = v.parse()?;
        if out.iter().any(|p| p.name == o.name) {
            return Err(format!("--image {}: the name is given twice", o.name));
        }
        out.push(o);
    }
    Ok(out)
}

/// One way of running an arm: NAME → the one image it gets, and the variant's label when it
/// is one of several (`None` when no `--image` had a list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variant {
    /// `(NAME, IMAGE)` in the order the overrides were given.
    pub picks: Vec<(String, String)>,
    /// The listed images this variant takes, joined by `+` (one per NAME with a list): what
    /// the arm's record is called after `@` (`baseline@frontend-2008`). Recipe names hold
    /// only lower-case letters, digits and '-', so the label is safe in a file name.
    pub label: Option<String>,
}

impl Variant {
    /// The arm's name in the run: `<arm>` or `<arm>@<label>`.
    pub fn arm_id(&self, arm: &str) -> String {
        match &self.label {
            Some(l) => format!("{arm}@{l}"),
            None => arm.to_string(),
        }
    }

    /// The `--image` words that run this variant again (empty without overrides).
    pub fn rerun_args(&self) -> String {
        self.picks
            .iter()
            .map(|(n, i)| format!(" --image {n}={i}"))
            .collect()
    }
}

/// Every variant the overrides ask for, in the order of their lists (the first list varies
/// slowest). Without overrides, one variant that changes nothing.
pub fn expand(overrides: &[ImageOverride]) -> Vec<Variant> {
    let mut out = vec![(Vec::new(), Vec::new())];
    for o in overrides {
        let mut next = Vec::new();
        for (picks, label) in &out {
            for image in &o.images {
                let mut picks: Vec<(String, String)> = picks.clone();
                picks.push((o.name.clone(), image.clone()));
                let mut label: Vec<String> = label.clone();
                if o.images.len() > 1 {
                    label.push(image.clone());
                }
                next.push((picks, label));
            }
        }
        out = next;
    }
    out.into_iter()
        .map(|(picks, label)| Variant {
            picks,
            label: (!label.is_empty()).then(|| label.join("+")),
        })
        .collect()
}

/// The image each guest of `arm` runs: the case's, replaced by the arm's `setup.images`,
/// replaced by `picks` (by guest name, else by that image name).
pub fn apply(case: &Case, arm: &Arm, picks: &[(String, String)]) -> BTreeMap<String, String> {
    case.guests
        .iter()
        .map(|g| {
            let base = arm.setup.images.get(&g.name).unwrap_or(&g.image);
            let by_guest = picks.iter().find(|(n, _)| *n == g.name);
            let by_image = picks.iter().find(|(n, _)| n == base);
            let image = by_guest.or(by_image).map_or(base, |(_, i)| i);
            (g.name.clone(), image.clone())
        })
        .collect()
}

/// Check the overrides against the selected arms and the recipes' names: every NAME must
/// match a guest (by its name, or its image after the arm's own) of some selected arm, and
/// every image must have a recipe. The first problem is the error.
pub fn check(
    overrides: &[ImageOverride],
    selected: &[(&Case, &Arm)],
    recipes: &[&str],
) -> Result<(), String> {
    for o in overrides {
        let matches = selected.iter().any(|(c, a)| {
            c.guests
                .iter()
                .any(|g| g.name == o.name || *a.setup.images.get(&g.name).unwrap_or(&g.image) == o.name)
        });
        if !matches {
            return Err(format!(
                "--image {o}: no selected arm has a guest named {n} or running image {n}",
                n = o.name
            ));
        }
        if let Some(i) = o.images.iter().find(|i| !recipes.contains(&i.as_str())) {
            return Err(format!(
                "--image {o}: no image recipe named {i} (known: {})",
                recipes.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke() -> Case {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
        crate::case::load(&file).unwrap()
    }

    fn o(s: &str) -> ImageOverride {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_takes_one_image_or_a_comma_list() {
        assert_eq!(
            o("imap1=frontend-2008"),
            ImageOverride {
                name: "imap1".into(),
                images: vec!["frontend-2008".into()]
            }
        );
        assert_eq!(o("frontend=a,b,c").images, ["a", "b", "c"]);
        assert_eq!(o("imap1=a,b").to_string(), "imap1=a,b");
    }

    #[test]
    fn bad_syntax_is_one_message_saying_what_is_expected() {
        for (given, why) in [
            ("imap1", "no `=`"),
            ("=frontend", "NAME must be"),
            ("imap1=", "\"\" is not an image name"),
            ("imap1=a,,b", "\"\" is not an image name"),
            ("imap1=Frontend", "\"Frontend\" is not an image name"),
            ("imap1=a,a", "image a is listed twice"),
            ("im ap=a", "NAME must be"),
        ] {
            let e = given.parse::<ImageOverride>().unwrap_err();
            assert!(e.contains(why), "{given}: {e}");
            assert!(e.contains("expected NAME=IMAGE[,IMAGE...]"), "{given}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let e = parse(&["imap1=a".into(), "imap1=b".into()]).unwrap_err();
        assert_eq!(e, "--image imap1: the name is given twice");
    }

    #[test]
    fn a_guest_name_wins_over_an_image_name() {
        let case = smoke();
        let arm = &case.arms[0];
        let picks = [
            ("frontend".to_string(), "frontend-2008".to_string()),
            ("imap2".to_string(), "frontend-deb12u6".to_string()),
        ];
        let got = apply(&case, arm, &picks);
        assert_eq!(got["filer"], "filer");
        assert_eq!(got["imap1"], "frontend-2008");
        assert_eq!(got["imap2"], "frontend-deb12u6");
        // Nothing asked: the case's own images.
        let plain = apply(&case, arm, &[]);
        assert_eq!(plain["imap1"], "frontend");
    }

    #[test]
    fn an_image_name_matches_the_image_after_the_arms_own_setup() {
        let mut case = smoke();
        case.arms[0]
            .setup
            .images
            .insert("imap1".into(), "frontend-fixed".into());
        let arm = case.arms[0].clone();
        let got = apply(&case, &arm, &[("frontend-fixed".into(), "x".into())]);
        assert_eq!(got["imap1"], "x");
        assert_eq!(got["imap2"], "frontend", "imap2 does not run frontend-fixed");
    }

    #[test]
    fn lists_expand_to_their_cross_product_and_only_lists_name_variants() {
        let v = expand(&[]);
        assert_eq!(v, [Variant::default()]);
        let v = expand(&[o("imap1=a")]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].label, None);
        assert_eq!(v[0].arm_id("baseline"), "baseline");
        assert_eq!(v[0].rerun_args(), " --image imap1=a");
        let v = expand(&[o("imap1=a,b"), o("filer=filer"), o("imap2=c,d")]);
        let ids: Vec<String> = v.iter().map(|v| v.arm_id("bug")).collect();
        assert_eq!(ids, ["bug@a+c", "bug@a+d", "bug@b+c", "bug@b+d"]);
        assert_eq!(
            v[1].rerun_args(),
            " --image imap1=a --image filer=filer --image imap2=d"
        );
    }

    #[test]
    fn an_override_must_match_a_guest_and_name_a_recipe() {
        let case = smoke();
        let selected = [(&case, &case.arms[0])];
        let recipes = ["filer", "frontend"];
        assert_eq!(
            check(&[o("imap1=frontend"), o("filer=filer")], &selected, &recipes),
            Ok(())
        );
        let e = check(&[o("mailhub=frontend")], &selected, &recipes).unwrap_err();
        assert_eq!(
            e,
            "--image mailhub=frontend: no selected arm has a guest named mailhub or running image mailhub"
        );
        let e = check(&[o("frontend=frontend,nosuch")], &selected, &recipes).unwrap_err();
        assert_eq!(
            e,
            "--image frontend=frontend,nosuch: no image recipe named nosuch (known: filer, frontend)"
        );
    }
}
