//! Which cache entries `faultline cache prune` removes: a decision over a list of entries
//! (kind, name, size, how long since last use, whether the current recipes need it, what it
//! is built on), made without touching the cache.
//!
//! Source builds (`sources/`: a build root with the compiled unpatched source, and one
//! variant's .deb files) are entries like the others but built on nothing the cache keeps: a
//! variant's .debs stand alone once made, and an image stands alone once its .debs are
//! installed. The recipes decide whether they are needed (see `cache_entries`).
//!
//! The policy: an entry stays if the current recipes need it, or (with `keep_newest`) it is
//! among the K most recently used of its kind and name; everything else goes. An entry built
//! on one that goes (a saved state on its image, a lab state on its guests' saved states)
//! goes with it. Then, with `max_bytes`, entries go least recently used first until the rest
//! fits, those the recipes need last.
//!
//! Architecture invariant: pure: no I/O, no clock (ages come in as data). A plan never keeps
//! an entry whose base it removes, and lists removals dependents first (labs, then states,
//! then images, then source builds), so a cache stopped halfway through a prune is still
//! consistent.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// What an entry holds, in the order entries are built on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `sources/base-<package>-<key>/` (a build root with the unpatched source compiled) or
    /// `sources/debs-<package>-<key>/` (one variant's .deb files): the name says which.
    Source,
    /// `images/<name>-<key>/`: a built image.
    Image,
    /// `states/<image>-<key>/`: a saved machine state of an image.
    State,
    /// `labs/<segment>-<key>/`: a whole-lab state.
    Lab,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Image => "image",
            Kind::State => "state",
            Kind::Lab => "lab",
        }
    }
}

/// One complete cache entry, as [`plan`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: Kind,
    /// The image (or the lab's segment) the entry is of.
    pub name: String,
    pub key: String,
    /// Bytes it takes on disk.
    pub bytes: u64,
    /// Some folders below it could not be read: `bytes` counts only the rest (at least).
    pub bytes_partial: bool,
    /// Seconds since it was last used (or built).
    pub idle_s: u64,
    /// The current recipes need it.
    pub needed: bool,
    /// The entries it is built on, by kind and folder name (`<name>-<key>`).
    pub built_on: Vec<(Kind, String)>,
}

impl Entry {
    /// Its folder's name in its store: `<name>-<key>`.
    pub fn folder(&self) -> String {
        if self.key.is_empty() {
            self.name.clone()
        } else {
            format!("{}-{}", self.name, self.key)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Also keep the K most recently used entries of each kind and name.
    pub keep_newest: Option<usize>,
    /// Remove entries until the rest takes at most this many bytes.
    pub max_bytes: Option<u64>,
}

/// Why an entry is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The current recipes do not need it (and it is not among the newest kept).
    NotNeeded,
    /// What it is built on goes (or is already gone).
    BaseRemoved,
    /// The cache is over the size cap and it was the least recently used.
    OverSize,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotNeeded => "not needed by the current recipes",
            Reason::BaseRemoved => "what it is built on goes",
            Reason::OverSize => "least recently used over the size cap",
        }
    }
}

/// The entries to remove (indexes into `entries`) with why, dependents first.
pub fn plan(entries: &[Entry], policy: Policy) -> Vec<(usize, Reason)> {
    let mut gone: BTreeMap<usize, Reason> = BTreeMap::new();
    // The K most recently used of each kind and name.
    let mut newest = BTreeSet::new();
    if let Some(k) = policy.keep_newest {
        let mut groups: BTreeMap<(Kind, &str), Vec<usize>> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            groups.entry((e.kind, &e.name)).or_default().push(i);
        }
        for idx in groups.values_mut() {
            idx.sort_by_key(|&i| (entries[i].idle_s, i));
            newest.extend(idx.iter().take(k).copied());
        }
    }
    for (i, e) in entries.iter().enumerate() {
        if !e.needed && !newest.contains(&i) {
            gone.insert(i, Reason::NotNeeded);
        }
    }
    with_dependents(entries, &mut gone);
    if let Some(cap) = policy.max_bytes {
        // An entry is in use whenever something built on it is: an image is as recently
        // used as its most recently used state or lab.
        let mut idle: Vec<u64> = entries.iter().map(|e| e.idle_s).collect();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(entries[i].kind));
        for i in order {
            for base in &entries[i].built_on {
                if let Some(b) = entries.iter().position(|e| (e.kind, e.folder()) == *base) {
                    idle[b] = idle[b].min(idle[i]);
                }
            }
        }
        loop {
            let kept: u64 = (0..entries.len())
                .filter(|i| !gone.contains_key(i))
                .map(|i| entries[i].bytes)
                .sum();
            if kept <= cap {
                break;
            }
            // Not needed before needed, then least recently used, then dependents first.
            let Some(victim) = (0..entries.len())
                .filter(|i| !gone.contains_key(i))
                .max_by_key(|&i| (!entries[i].needed, idle[i], entries[i].kind, std::cmp::Reverse(i)))
            else {
                break;
            };
            gone.insert(victim, Reason::OverSize);
            with_dependents(entries, &mut gone);
        }
    }
    let mut out: Vec<(usize, Reason)> = gone.into_iter().collect();
    out.sort_by_key(|&(i, _)| (std::cmp::Reverse(entries[i].kind), i));
    out
}

/// A size as people write it: `500M`, `20G`, `1.5GiB`, `4096` (bytes). K, M, G and T are
/// powers of 1024, with or without `B` or `iB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500M, 20G, 1.5GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (B, K, M, G or T)")),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// Add every entry built on one that goes (or on one that is not there at all).
fn with_dependents(entries: &[Entry], gone: &mut BTreeMap<usize, Reason>) {
    loop {
        let present: BTreeSet<(Kind, String)> = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains_key(i))
            .map(|(_, e)| (e.kind, e.folder()))
            .collect();
        let orphans: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(i, e)| !gone.contains_key(i) && e.built_on.iter().any(|b| !present.contains(b)))
            .map(|(i, _)| i)
            .collect();
        if orphans.is_empty() {
            return;
        }
        for i in orphans {
            gone.insert(i, Reason::BaseRemoved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: Kind, name: &str, key: &str, bytes: u64, idle_s: u64, needed: bool) -> Entry {
        Entry {
            kind,
            name: name.into(),
            key: key.into(),
            bytes,
            bytes_partial: false,
            idle_s,
            needed,
            built_on: Vec::new(),
        }
    }

    fn on(mut entry: Entry, kind: Kind, folder: &str) -> Entry {
        entry.built_on.push((kind, folder.into()));
        entry
    }

    fn removed(entries: &[Entry], policy: Policy) -> Vec<String> {
        plan(entries, policy)
            .into_iter()
            .map(|(i, _)| format!("{}:{}", entries[i].kind.as_str(), entries[i].folder()))
            .collect()
    }

    /// A cache with the current filer (image, state, a lab on it) and an older filer.
    fn cache() -> Vec<Entry> {
        vec![
            e(Kind::Image, "filer", "new", 400, 10, true),
            e(Kind::Image, "filer", "old", 400, 5000, false),
            on(
                e(Kind::State, "filer", "s-new", 300, 10, true),
                Kind::Image,
                "filer-new",
            ),
            on(
                e(Kind::State, "filer", "s-old", 300, 5000, false),
                Kind::Image,
                "filer-old",
            ),
            on(
                e(Kind::Lab, "lan", "l-new", 200, 20, true),
                Kind::State,
                "filer-s-new",
            ),
            on(
                e(Kind::Lab, "lan", "l-old", 200, 4000, false),
                Kind::State,
                "filer-s-old",
            ),
        ]
    }

    #[test]
    fn by_default_what_the_recipes_need_stays_and_the_rest_goes_dependents_first() {
        assert_eq!(
            removed(&cache(), Policy::default()),
            ["lab:lan-l-old", "state:filer-s-old", "image:filer-old"]
        );
    }

    #[test]
    fn keep_newest_keeps_the_most_recently_used_of_each_kind_and_name() {
        let mut c = cache();
        c.push(e(Kind::Image, "filer", "older", 400, 9000, false));
        // Two newest filer images: new and old; the oldest goes.
        let p = Policy {
            keep_newest: Some(2),
            ..Policy::default()
        };
        assert_eq!(removed(&c, p), ["image:filer-older"]);
        // One newest: the needed ones are the newest, so the old ones go.
        let p = Policy {
            keep_newest: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            removed(&c, p),
            [
                "lab:lan-l-old",
                "state:filer-s-old",
                "image:filer-old",
                "image:filer-older"
            ]
        );
        // Zero newest: only what is needed stays.
        let p = Policy {
            keep_newest: Some(0),
            ..Policy::default()
        };
        assert_eq!(removed(&c, p).len(), 4);
    }

    #[test]
    fn an_entry_built_on_one_that_goes_goes_too() {
        // The old state is among the newest states, but its image is not among the newest images.
        let mut c = cache();
        c[3].idle_s = 1;
        let p = Policy {
            keep_newest: Some(1),
            ..Policy::default()
        };
        let plan = plan(&c, p);
        assert!(plan.contains(&(3, Reason::BaseRemoved)), "{plan:?}");
        assert!(plan.iter().any(|&(i, _)| i == 5), "its lab goes too: {plan:?}");
        // Built on something that is not in the cache at all: useless, so it goes.
        let orphan = vec![on(
            e(Kind::State, "filer", "x", 1, 1, false),
            Kind::Image,
            "filer-gone",
        )];
        let p = Policy {
            keep_newest: Some(5),
            ..Policy::default()
        };
        assert_eq!(plan_reasons(&orphan, p), [Reason::BaseRemoved]);
    }

    fn plan_reasons(entries: &[Entry], p: Policy) -> Vec<Reason> {
        plan(entries, p).into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn a_size_cap_removes_least_recently_used_first_and_needed_entries_last() {
        let c = cache();
        let keep_all = Some(10);
        // Everything is 1800 bytes; under a 1800 cap nothing goes.
        let p = Policy {
            keep_newest: keep_all,
            max_bytes: Some(1800),
        };
        assert!(removed(&c, p).is_empty());
        // 1500: the least recently used unneeded entries are the old image and state (5000 s);
        // of equals, the one built on the other goes first, and the lab built on it with it.
        let p = Policy {
            keep_newest: keep_all,
            max_bytes: Some(1500),
        };
        assert_eq!(removed(&c, p), ["lab:lan-l-old", "state:filer-s-old"]);
        // 600: every unneeded entry is gone and it is still too big, so needed ones go, least
        // recently used first (the lab, 20 s, then the state and image, 10 s).
        let p = Policy {
            keep_newest: keep_all,
            max_bytes: Some(600),
        };
        let r = removed(&c, p);
        assert!(r.contains(&"lab:lan-l-new".to_string()), "{r:?}");
        assert!(!r.contains(&"image:filer-new".to_string()), "{r:?}");
        let p = Policy {
            keep_newest: None,
            max_bytes: Some(0),
        };
        assert_eq!(removed(&c, p).len(), 6);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size(" 2kb "), Ok(2048));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn under_a_cap_an_image_is_as_recently_used_as_what_stands_on_it() {
        // The image was built long ago, its state and lab used just now; an old lab on it
        // was last used an hour ago. The old lab goes, not the image under the new one.
        let c = vec![
            e(Kind::Image, "filer", "i", 400, 90_000, true),
            on(
                e(Kind::State, "filer", "s", 300, 60, true),
                Kind::Image,
                "filer-i",
            ),
            on(e(Kind::Lab, "lan", "new", 200, 30, true), Kind::State, "filer-s"),
            on(
                e(Kind::Lab, "lan", "old", 200, 3600, true),
                Kind::State,
                "filer-s",
            ),
        ];
        let p = Policy {
            keep_newest: None,
            max_bytes: Some(950),
        };
        assert_eq!(removed(&c, p), ["lab:lan-old"]);
    }

    /// [`cache`] with a source's build root and two variants' .debs (the current and an old
    /// one), and an old source version's build root.
    fn cache_with_sources() -> Vec<Entry> {
        let mut c = cache();
        c.extend([
            e(Kind::Source, "base-dovecot", "b-new", 1300, 600, true),
            e(Kind::Source, "base-dovecot", "b-old", 1300, 90_000, false),
            e(Kind::Source, "debs-dovecot", "v-new", 8, 600, true),
            e(Kind::Source, "debs-dovecot", "v-old", 8, 80_000, false),
        ]);
        c
    }

    fn plan_lines(entries: &[Entry], p: Policy) -> String {
        plan(entries, p)
            .into_iter()
            .map(|(i, r)| {
                format!(
                    "{} {}: {}\n",
                    entries[i].kind.as_str(),
                    entries[i].folder(),
                    r.as_str()
                )
            })
            .collect()
    }

    #[test]
    fn source_builds_the_recipes_need_stay_and_the_rest_go_after_images() {
        let c = cache_with_sources();
        insta::assert_snapshot!(plan_lines(&c, Policy::default()));
        // Kept newest per kind and name: a build root and a set of .debs are different names.
        let p = Policy {
            keep_newest: Some(1),
            ..Policy::default()
        };
        assert!(!removed(&c, p).iter().any(|f| f.contains("-new")));
        let p = Policy {
            keep_newest: Some(2),
            ..Policy::default()
        };
        assert!(removed(&c, p).is_empty());
    }

    #[test]
    fn under_a_cap_a_needed_build_root_goes_by_its_last_use_like_any_needed_entry() {
        let mut c = cache_with_sources();
        // Unneeded all gone (1800 + 2616 - 1308 - 900 = 2208 left) is still over 1500: the
        // least recently used needed entry goes, the build root (600 s), before the lab (20 s).
        let p = Policy {
            keep_newest: None,
            max_bytes: Some(1500),
        };
        let r = removed(&c, p);
        assert!(r.contains(&"source:base-dovecot-b-new".to_string()), "{r:?}");
        assert!(!r.contains(&"lab:lan-l-new".to_string()), "{r:?}");
        // Used a moment ago (a variant build held it): the build root outlives older entries.
        c[6].idle_s = 1;
        let r = removed(&c, p);
        assert!(!r.contains(&"source:base-dovecot-b-new".to_string()), "{r:?}");
        insta::assert_snapshot!(plan_lines(&c, p));
    }

    #[test]
    fn nothing_in_the_cache_plans_nothing() {
        assert!(plan(&[], Policy::default()).is_empty());
    }
}
