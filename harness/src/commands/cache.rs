//! `faultline cache list | prune`: the image cache's entries (images, saved states, lab
//! states, source builds), and the removal of those the current recipes no longer need.
//!
//! Architecture invariant: `list` and `prune --dry-run` change nothing in the cache; `prune`
//! removes only through the stores' rule (an entry in use is skipped, a removal cut short
//! never looks complete).

use std::time::SystemTime;

use super::Common;
use crate::cache_entries::{self, Applied};
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images;
use crate::prune::{self, Entry, Policy};

/// What `prune` keeps besides what the recipes need, and whether it only says what it would do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    pub policy: Policy,
    pub dry_run: bool,
}

fn entries(common: &Common) -> Result<Vec<Entry>, CommandError> {
    let recipes = images::load_recipes(&common.recipes, &[])?;
    let needed = cache_entries::needed_by(&recipes, &common.cache).map_err(|e| {
        CommandError::Input(format!(
            "hashing the recipes in {}: {e}",
            common.recipes.display()
        ))
    })?;
    cache_entries::scan(&common.cache, &needed, SystemTime::now())
        .map_err(|e| CommandError::Broken(format!("reading the cache {}: {e}", common.cache.display())))
}

/// `faultline cache list`: one line per entry, in columns as wide as their longest value.
pub fn list_cache(common: &Common, console: &dyn Console) -> Result<Exit, CommandError> {
    let entries = entries(common)?;
    let kind_w = entries.iter().map(|e| e.kind.as_str().len()).fold(4, usize::max);
    let name_w = entries.iter().map(|e| e.name.len()).fold(4, usize::max);
    console.out(&format!(
        "{:<kind_w$} {:<name_w$} {:<16} {:>10} {:>10}  needed",
        "kind", "name", "key", "size", "last used"
    ));
    for e in &entries {
        console.out(&format!(
            "{:<kind_w$} {:<name_w$} {:<16} {:>10} {:>10}  {}",
            e.kind.as_str(),
            e.name,
            e.key,
            shown_size(e),
            format!("{} ago", age(e.idle_s)),
            if e.needed { "yes" } else { "no" }
        ));
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let needed: u64 = entries.iter().filter(|e| e.needed).map(|e| e.bytes).sum();
    let partial = entries.iter().filter(|e| e.bytes_partial).count();
    console.note(&format!(
        "{} entries, {} in {} ({} needed by the recipes in {})",
        entries.len(),
        size(total),
        common.cache.display(),
        size(needed),
        common.recipes.display()
    ));
    if partial > 0 {
        console.note(&format!(
            "{partial} entries hold folders this user cannot read: their sizes (≥) count only the rest"
        ));
    }
    Ok(Exit::Ok)
}

/// An entry's size, `≥` when part of it could not be read.
fn shown_size(e: &Entry) -> String {
    if e.bytes_partial {
        format!("≥{}", size(e.bytes))
    } else {
        size(e.bytes)
    }
}

/// `faultline cache prune`: remove what the policy does not keep; entries in use stay.
pub fn prune_cache(common: &Common, o: PruneOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let entries = entries(common)?;
    let plan = prune::plan(&entries, o.policy);
    let done = cache_entries::apply(&common.cache, &entries, &plan, o.dry_run);
    let (mut freed, mut removed, mut failed) = (0u64, 0usize, false);
    for (&(i, why), what) in plan.iter().zip(&done) {
        let e = &entries[i];
        let name = format!("{} {} ({})", e.kind.as_str(), e.folder(), shown_size(e));
        let line = match what {
            Applied::Removed | Applied::WouldRemove => {
                freed += e.bytes;
                removed += 1;
                let verb = if o.dry_run { "would remove" } else { "removed" };
                format!("{verb} {name}: {}", why.as_str())
            }
            Applied::Busy => format!("kept {name}: in use"),
            Applied::Base(user) => format!("kept {name}: {user} is built on it and stays"),
            Applied::Absent => format!("gone already: {name}"),
            Applied::Failed(err) => {
                failed = true;
                format!("could not remove {name}: {err}")
            }
        };
        console.out(&line);
    }
    let left: u64 = entries.iter().map(|e| e.bytes).sum::<u64>() - freed;
    console.note(&format!(
        "{} {removed} of {} entries, {}; {} left in {}",
        if o.dry_run { "would remove" } else { "removed" },
        entries.len(),
        size(freed),
        size(left),
        common.cache.display()
    ));
    Ok(if failed { Exit::Broken } else { Exit::Ok })
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_at_a_glance() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(389 << 20), "389.0 MiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 3600), "3 h");
        assert_eq!(age(5 * 86_400), "5 d");
    }
}
