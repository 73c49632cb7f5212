//! How many arms run at once: `--jobs N`, or `auto` from the machine's cores and memory.
//!
//! Architecture invariant: the choice is pure ([`Jobs::resolve`] takes the machine's
//! figures as data); only [`Jobs::here`] reads them.

use std::str::FromStr;

/// What a lab of three guests holds in memory, with room for QEMU itself and the page
/// cache its overlays use (measured: about 1.7 GiB).
pub const LAB_BYTES: u64 = 2 << 30;

/// `--jobs`: a number of arms at once, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Auto,
    N(usize),
}

impl FromStr for Jobs {
    type Err = String;
    fn from_str(s: &str) -> Result<Jobs, String> {
        if s == "auto" {
            return Ok(Jobs::Auto);
        }
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Jobs::N(n)),
            _ => Err(format!("{s:?} is not a number of arms (1 or more) or `auto`")),
        }
    }
}

impl Jobs {
    /// The number of arms at once on a machine with `cores` and `available` bytes of memory.
    /// `auto`: one arm per core and one more (an arm's guests spend most of their time
    /// waiting on timers), no more labs than memory holds, at least one.
    pub fn resolve(self, cores: usize, available: u64) -> usize {
        match self {
            Jobs::N(n) => n,
            Jobs::Auto => {
                let by_memory = usize::try_from(available / LAB_BYTES).unwrap_or(usize::MAX);
                (cores + 1).min(by_memory).max(1)
            }
        }
    }

    /// [`Jobs::resolve`] for this machine (`MemAvailable` of /proc/meminfo).
    pub fn here(self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_available(&m))
            .unwrap_or(LAB_BYTES);
        self.resolve(cores, available)
    }
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_a_core_and_one_more_within_what_memory_holds() {
        assert_eq!(Jobs::Auto.resolve(2, 20 << 30), 3);
        assert_eq!(Jobs::Auto.resolve(16, 5 << 30), 2, "memory for two labs only");
        assert_eq!(Jobs::Auto.resolve(2, 1 << 30), 1, "never fewer than one");
        assert_eq!(
            Jobs::N(5).resolve(2, 1 << 30),
            5,
            "a number asked for is taken as it is"
        );
    }

    #[test]
    fn jobs_are_a_positive_number_or_auto() {
        assert_eq!("auto".parse::<Jobs>(), Ok(Jobs::Auto));
        assert_eq!("2".parse::<Jobs>(), Ok(Jobs::N(2)));
        assert!("0".parse::<Jobs>().is_err());
        assert!("two".parse::<Jobs>().is_err());
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available(m), Some(20_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
