//! The case itself, its guests and segments.

use super::*;

#[test]
fn the_case_its_guests_and_segments() {
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("name = \"t\"", "name = \"x\"")),
        "t.toml:1:8: the case is named `x` but its file is t.toml: the name must be `t`"
    );
    assert_eq!(
        parse(Path::new("dir/Bad Name.toml"), &format!("{HEAD}{TAIL}").replace("name = \"t\"", "name = \"Bad Name\""))
            .unwrap_err()
            .to_string(),
        "dir/Bad Name.toml:1:8: case name \"Bad Name\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit"
    );
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("summary = \"s\"", "summary = \" \"")),
        "t.toml:2:11: summary is empty"
    );
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("[guests.imap1]", "[guests.web]")),
        "t.toml:5:9: `web` is not a lab guest name: use one of filer, imap1, imap2, imap3, client (the names with an address in the images' /etc/hosts)"
    );
    assert_eq!(
        full_err("name = \"t\"\nsummary = \"s\"\nguests = {}\n[checks.ok]\nstep_ok = { step = \"a\" }\n[arms.a]\nexpect = \"pass\"\n"),
        "t.toml:3:1: a case needs at least one guest"
    );
    table(&[
        (
            "[segments]\n",
            "t.toml:11:1: `segments` needs at least one segment (or leave it out: one segment `lan` then holds every guest)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\", \"imap1\", \"client\"]\n",
            "t.toml:12:29: unknown guest `client` (this case has filer, imap1)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\", \"imap1\"]\n[segments.back]\nguests = [\"imap1\"]\n",
            "t.toml:14:11: guest `imap1` is already on segment `lan`: a guest has one network port",
        ),
        ("[segments.lan]\nguests = [\"filer\"]\n", "t.toml:5:9: guest `imap1` is on no segment"),
        (
            "[segments.lan]\nguests = []\n",
            "t.toml:12:10: segment `lan` needs at least one guest",
        ),
        (
            "[segments.LAN]\nguests = [\"filer\", \"imap1\"]\n",
            "t.toml:11:11: segment name \"LAN\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
    ]);
    // Without `segments`, one segment `lan` holds every guest.
    let c = ok("");
    assert_eq!(
        c.segments,
        [Segment {
            name: "lan".into(),
            guests: vec!["filer".into(), "imap1".into()]
        }]
    );
    assert_eq!(c.guest("filer").unwrap().role, "filer");
}
