use super::*;
use std::fs;

/// Write `files` (name → text) into a fresh folder and load `top` from it.
fn load_in(files: &[(&str, &str)], top: &str) -> (tempfile::TempDir, Result<Recipe, RecipeError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let r = load(&dir.path().join(top));
    (dir, r)
}

/// The error's text with the temp folder taken out.
fn err_of(files: &[(&str, &str)], top: &str) -> String {
    let (dir, r) = load_in(files, top);
    let e = r.expect_err("the recipe should be rejected").to_string();
    e.replace(&format!("{}/", dir.path().display()), "")
}

const BASE: &str = r#"
suite = "bookworm"
mirrors = ["http://deb.debian.org/debian bookworm main"]
disk_size = "1G"
[kernel]
package = "linux-image-6.1.0-56-cloud-amd64"
cmdline = "console=ttyS0"
[packages]
"linux-image-6.1.0-56-cloud-amd64" = "6.1.192-2"
"#;

#[test]
fn a_minimal_recipe_loads() {
    let top = "name = \"x\"\nrole = \"filer\"\ninclude = [\"base.toml\"]\n[packages]\nnfs-kernel-server = \"1:2.6.2-4+deb12u1\"\n";
    let (_d, r) = load_in(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    let r = r.unwrap();
    assert_eq!(r.kernel.release(), "6.1.0-56-cloud-amd64");
    assert_eq!(r.packages.len(), 2);
    assert_eq!(r.disk_size_bytes, 1 << 30);
    assert_eq!(r.sources.len(), 2);
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let top = "name = \"x\"\nrole = \"filer\"\ninclude = [\"base.toml\"]\n\n  colour = \"red\"\n";
    let e = err_of(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    assert!(e.starts_with("x.toml:5:3: unknown field `colour`"), "{e}");
}

#[test]
fn unknown_key_in_an_included_file_names_that_file() {
    let base = BASE.replace("[kernel]", "[kernel]\nflavour = \"cloud\"");
    let top = "name = \"x\"\nrole = \"filer\"\ninclude = [\"base.toml\"]\n";
    let e = err_of(&[("base.toml", &base), ("x.toml", top)], "x.toml");
    assert!(e.starts_with("base.toml:6:1: unknown field `flavour`"), "{e}");
}

#[test]
fn a_version_that_is_not_exact_is_rejected_where_it_stands() {
    for bad in ["*", "", ">= 1.0", "latest", "1:", "a1.0"] {
        let top = format!(
            "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\"]\n[packages]\ndovecot-core = {bad:?}\n"
        );
        let e = err_of(&[("base.toml", BASE), ("x.toml", &top)], "x.toml");
        assert!(
            e.starts_with("x.toml:5:16: package dovecot-core must be pinned"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn exact_versions_are_accepted() {
    for good in [
        "1:2.3.19.1+dfsg1-2.1+deb12u7",
        "6.4",
        "3:20221126-1+deb12u1",
        "252.39-1~deb12u2",
        "1.2.6-6+b1",
    ] {
        assert!(is_exact_version(good), "{good}");
    }
}

#[test]
fn the_same_package_pinned_twice_differently_is_an_error() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\"]\n[packages]\n\"linux-image-6.1.0-56-cloud-amd64\" = \"6.1.192-3\"\n";
    let e = err_of(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    assert!(e.starts_with("x.toml:5:38: package linux-image-6.1.0-56-cloud-amd64 is pinned to 6.1.192-3 here but to 6.1.192-2 at base.toml:9:"), "{e}");
}

#[test]
fn a_kernel_that_is_not_pinned_is_an_error() {
    let base = BASE.replace("\"linux-image-6.1.0-56-cloud-amd64\" = \"6.1.192-2\"", "");
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\"]\n";
    let e = err_of(&[("base.toml", &base), ("x.toml", top)], "x.toml");
    assert!(
        e.starts_with("base.toml:6:11: kernel package linux-image-6.1.0-56-cloud-amd64 is not pinned"),
        "{e}"
    );
}

#[test]
fn a_missing_file_source_is_an_error() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\"]\n[files]\n\"/etc/exports\" = \"files/exports\"\n";
    let e = err_of(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    assert!(e.starts_with("x.toml:5:18: no such file:"), "{e}");
}

#[test]
fn include_cycles_and_missing_includes_are_errors() {
    let a = "include = [\"b.toml\"]\n";
    let b = "include = [\"a.toml\"]\n";
    let e = err_of(&[("a.toml", a), ("b.toml", b)], "a.toml");
    assert!(e.starts_with("b.toml:1:12: include cycle"), "{e}");
    let e = err_of(&[("a.toml", "include = [\"nope.toml\"]\n")], "a.toml");
    assert!(e.starts_with("a.toml:1:12: cannot read included recipe"), "{e}");
}

#[test]
fn a_missing_name_points_at_the_top_file() {
    let e = err_of(
        &[("base.toml", BASE), ("x.toml", "include = [\"base.toml\"]\n")],
        "x.toml",
    );
    assert_eq!(e, "x.toml:1:1: missing `name`");
}

#[test]
fn bad_units_and_sizes_are_errors() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\"]\n[units]\nenable = [\"nfs-server\"]\n";
    let e = err_of(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    assert!(
        e.starts_with("x.toml:5:11: \"nfs-server\" is not a systemd unit name"),
        "{e}"
    );
    let top = "name = \"x\"\nrole = \"r\"\ndisk_size = \"lots\"\ninclude = [\"base.toml\"]\n";
    let e = err_of(&[("base.toml", BASE), ("x.toml", top)], "x.toml");
    assert!(e.starts_with("x.toml:3:13: bad size \"lots\""), "{e}");
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("2G"), Some(2 << 30));
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("4096"), Some(4096));
    assert_eq!(parse_size("G"), None);
    assert_eq!(parse_size("99999999999999999999G"), None);
}

/// The project's own recipes load, and what they resolve to is pinned by a snapshot, so a
/// change to an image's contents shows up in review.
#[test]
fn the_projects_recipes_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for name in ["filer", "frontend", "frontend-2008"] {
        let r = load(&root.join("images").join(format!("{name}.toml"))).unwrap();
        let mut v = serde_json::to_value(&r).unwrap();
        let text = serde_json::to_string_pretty(&v)
            .unwrap()
            .replace(&format!("{}/", root.display()), "");
        v = serde_json::from_str(&text).unwrap();
        insta::assert_json_snapshot!(format!("recipe_{name}"), v);
    }
}

const SOURCE: &str = r#"
[source]
package = "dovecot"
version = "1:2.3.19.1+dfsg1-2.1+deb12u6"
mirror = "http://deb.debian.org/debian bookworm main"
install = ["dovecot-core"]
"#;

#[test]
fn built_packages_replace_the_pins_of_the_same_name() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\", \"src.toml\"]\n[packages]\ndovecot-core = \"1:2.3.19.1+dfsg1-2.1+deb12u7\"\ncurl = \"7.88.1-10+deb12u15\"\n[source]\npatches = [\"a.patch\", \"b.patch\"]\n";
    let (_d, r) = load_in(
        &[
            ("base.toml", BASE),
            ("src.toml", SOURCE),
            ("a.patch", ""),
            ("b.patch", ""),
            ("x.toml", top),
        ],
        "x.toml",
    );
    let r = r.unwrap();
    assert!(!r.packages.contains_key("dovecot-core"));
    assert!(r.packages.contains_key("curl"));
    let s = r.source.unwrap();
    assert_eq!(s.install, ["dovecot-core"]);
    let names: Vec<_> = s
        .patches
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.patch", "b.patch"]);
}

#[test]
fn a_missing_patch_file_is_named_where_the_recipe_lists_it() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\", \"src.toml\"]\n[source]\npatches = [\"gone.patch\"]\n";
    let e = err_of(
        &[("base.toml", BASE), ("src.toml", SOURCE), ("x.toml", top)],
        "x.toml",
    );
    assert!(e.starts_with("x.toml:5:12: no such patch file"), "{e}");
}

#[test]
fn a_source_without_install_is_one_error_at_the_table() {
    let src = SOURCE.replace("install = [\"dovecot-core\"]\n", "");
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\", \"src.toml\"]\n";
    let e = err_of(
        &[("base.toml", BASE), ("src.toml", &src), ("x.toml", top)],
        "x.toml",
    );
    assert!(e.starts_with("src.toml:3:11: [source] needs `install`"), "{e}");
}

#[test]
fn a_source_option_with_a_quote_is_rejected() {
    let top = "name = \"x\"\nrole = \"r\"\ninclude = [\"base.toml\", \"src.toml\"]\n[source.options]\nDEB_BUILD_OPTIONS = \"a'b\"\n";
    let e = err_of(
        &[("base.toml", BASE), ("src.toml", SOURCE), ("x.toml", top)],
        "x.toml",
    );
    assert!(e.starts_with("x.toml:5:21: an option's value"), "{e}");
}

/// The files a custom `[kernel]` names, written into the recipe's folder.
const CUSTOM_KERNEL: &str = "[kernel]\nvmlinuz = \"k/vmlinuz\"\nconfig = \"k/config\"\nmodules = \"k/modules\"\nversion = \"6.1.0-56-amd64\"\n";

fn custom_kernel_files(top: &str) -> Vec<(&'static str, String)> {
    vec![
        ("base.toml", BASE.to_string()),
        ("k/vmlinuz", "kernel".into()),
        ("k/config", "CONFIG_RD_GZIP=y\n".into()),
        ("k/modules/modules.order", String::new()),
        ("x.toml", top.to_string()),
    ]
}

#[test]
fn an_including_recipe_switches_to_its_own_kernel_and_keeps_the_cmdline_and_debian_package() {
    let top = format!("name = \"x\"\nrole = \"filer\"\ninclude = [\"base.toml\"]\n{CUSTOM_KERNEL}");
    let files = custom_kernel_files(&top);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let (dir, r) = load_in(&files, "x.toml");
    let r = r.unwrap();
    assert_eq!(r.kernel.release(), "6.1.0-56-amd64");
    assert_eq!(
        r.kernel.cmdline(),
        "console=ttyS0",
        "the included cmdline is kept"
    );
    assert_eq!(
        r.kernel,
        Kernel::Custom {
            vmlinuz: dir.path().join("k/vmlinuz"),
            config: dir.path().join("k/config"),
            modules: dir.path().join("k/modules"),
            version: "6.1.0-56-amd64".into(),
            cmdline: "console=ttyS0".into(),
        }
    );
    // The Debian kernel stays installed (README: for its tools), only not booted.
    assert!(r.packages.contains_key("linux-image-6.1.0-56-cloud-amd64"));
}

#[test]
fn a_custom_kernel_without_its_config_is_an_error() {
    let kernel = CUSTOM_KERNEL.replace("config = \"k/config\"\n", "");
    let top = format!("name = \"x\"\nrole = \"filer\"\ninclude = [\"base.toml\"]\n{kernel}");
    let files = custom_kernel_files(&top);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let e = err_of(&files, "x.toml");
    assert!(
        e.starts_with("x.toml:5:11: a custom kernel also needs `config`"),
        "{e}"
    );
}
