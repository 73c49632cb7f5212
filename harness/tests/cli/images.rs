//! `run --image` and `bisect` refuse bad input with one line and exit 2, before any image
//! is built or any run folder made.

use super::{faultline, project_cases, project_images};

/// Run faultline with the project's cases and recipes, an empty cache and a results folder
/// that must stay absent: (exit code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let (cases, recipes) = (project_cases(), project_images());
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--cases-dir",
        &cases,
        "--recipes",
        &recipes,
        "--results",
        results.to_str().unwrap(),
    ]);
    let out = faultline(&all, &[("FAULTLINE_CACHE", cache.to_str().unwrap())]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!results.exists(), "{args:?}: a run folder was made");
    assert!(!cache.exists(), "{args:?}: something was built");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    (out.status.code(), err)
}

#[test]
fn bad_image_syntax_is_exit_2_with_one_line() {
    for (arg, why) in [
        ("imap1", "no `=`"),
        ("imap1=", "\"\" is not an image name"),
        ("=frontend", "NAME must be"),
    ] {
        let (code, err) = refused(&["run", "smoke", "--image", arg]);
        assert_eq!(code, Some(2), "{arg}: {err}");
        assert!(
            err.starts_with(&format!("error: --image `{arg}`: {why}")),
            "{err}"
        );
    }
}

#[test]
fn an_image_without_a_recipe_is_exit_2() {
    let (code, err) = refused(&["run", "smoke", "--image", "imap1=frontend,nosuch"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: --image imap1=frontend,nosuch: no image recipe named nosuch (known: filer, "),
        "{err}"
    );
}

#[test]
fn an_override_naming_no_guest_is_exit_2() {
    let (code, err) = refused(&["run", "smoke", "--image", "mailhub=frontend"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no selected arm has a guest named mailhub or running image mailhub"),
        "{err}"
    );
}

#[test]
fn bisect_needs_two_images_a_case_arm_and_known_images() {
    for (args, want) in [
        (
            vec!["bisect", "smoke::baseline", "--images", "frontend"],
            "bisect needs at least two images",
        ),
        (
            vec!["bisect", "smoke", "--images", "frontend,frontend-2008"],
            "`smoke`: bisect takes one CASE::ARM",
        ),
        (
            vec!["bisect", "smoke::baseline", "--images", "frontend,Frontend"],
            "--images frontend,Frontend: \"Frontend\" is not an image name",
        ),
        (
            vec![
                "bisect",
                "smoke::baseline",
                "--images",
                "frontend,nosuch",
                "--guest",
                "imap1",
            ],
            "no image recipe named nosuch",
        ),
        (
            vec!["bisect", "smoke::nosuch", "--images", "frontend,filer"],
            "case smoke has no arm named nosuch",
        ),
        (
            vec!["bisect", "smoke::baseline", "--images", "frontend,filer"],
            "guests imap1, imap2 of smoke::baseline all run an image of role frontend",
        ),
    ] {
        let (code, err) = refused(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
