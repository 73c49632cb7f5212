//! Keeping the host out of a vendor bundle: its absolute paths (the run folder, the project,
//! the home and cache folders) and its name, rewritten in every text the bundle holds, and a
//! re-run command's case file made `cases/<file>.toml`.
//!
//! Architecture invariant: pure. What counts as the host is data ([`Host`]), gathered once at
//! the edge, so the rewriting is tested with any host.

/// What of the host must not leave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Absolute host folders and what each becomes (`/root/.cache/faultline` → `<cache>`).
    /// Applied longest first, so a folder inside another keeps its own name.
    pub paths: Vec<(String, String)>,
    /// The host's name, rewritten where it stands as a whole word.
    pub name: Option<String>,
}

/// What the host's name becomes.
pub const HOST_NAME: &str = "<host>";

impl Host {
    /// A host with these folders (empty ones and `/` are left out: they would match every
    /// path) and this name.
    pub fn new(paths: impl IntoIterator<Item = (String, String)>, name: Option<String>) -> Host {
        let mut paths: Vec<(String, String)> = paths
            .into_iter()
            .map(|(p, to)| (p.trim_end_matches('/').to_string(), to))
            .filter(|(p, _)| p.len() > 1 && p.starts_with('/'))
            .collect();
        paths.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        paths.dedup_by(|a, b| a.0 == b.0);
        Host {
            paths,
            name: name.filter(|n| !n.trim().is_empty()),
        }
    }

    /// `text` with every host folder and the host's name rewritten.
    pub fn scrub(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (p, to) in &self.paths {
            s = replace_path(&s, p, to);
        }
        match &self.name {
            Some(n) => replace_word(&s, n, HOST_NAME),
            None => s,
        }
    }

    /// What of the host `text` still holds (for tests and the bundle's own check).
    pub fn leaks(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .paths
            .iter()
            .filter(|(p, _)| find_path(text, p).is_some())
            .map(|(p, _)| p.clone())
            .collect();
        if let Some(n) = &self.name {
            if replace_word(text, n, "") != text {
                out.push(n.clone());
            }
        }
        out
    }
}

/// A re-run command with each word that names a case file (`….toml` with a folder) as
/// `cases/<file>.toml`, where the bundle's reader has the project's cases.
pub fn rerun_relative(command: &str) -> String {
    command
        .split(' ')
        .map(|w| match w.rsplit_once('/') {
            Some((_, file)) if w.ends_with(".toml") && !file.is_empty() => format!("cases/{file}"),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where `path` occurs in `text` as a path: followed by the end, `/` or a character no path
/// name would go on with (so `/work/a` is not found inside `/work/ab`).
fn find_path(text: &str, path: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(path) {
        let start = from + at;
        let end = start + path.len();
        if text[end..].chars().next().is_none_or(ends_path) {
            return Some(start);
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

fn ends_path(c: char) -> bool {
    !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn replace_path(text: &str, path: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_path(rest, path) {
        out.push_str(&rest[..at]);
        out.push_str(to);
        rest = &rest[at + path.len()..];
    }
    out.push_str(rest);
    out
}

/// `text` with `word` replaced where neither side touches a letter, digit, `-` or `_`.
fn replace_word(text: &str, word: &str, to: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        let before = text[..start].chars().next_back().is_none_or(|c| !is_word(c));
        let after = text[end..].chars().next().is_none_or(|c| !is_word(c));
        if before && after {
            out.push_str(&text[copied..start]);
            out.push_str(to);
            copied = end;
            from = end;
        } else {
            from = start + word.chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host::new(
            [
                ("/srv/proj/results/run-1".to_string(), "<run>".to_string()),
                ("/srv/proj".to_string(), ".".to_string()),
                ("/home/ci".to_string(), "~".to_string()),
                ("/".to_string(), "never".to_string()),
            ],
            Some("buildbox-7".to_string()),
        )
    }

    #[test]
    fn host_folders_and_name_are_rewritten_guest_paths_are_not() {
        let h = host();
        let s = h.scrub(
            "see /srv/proj/results/run-1/smoke/a/wire/lan.pcapng and /srv/proj/cases/x.toml; \
             /srv/projects stays; cache ~ /home/ci/.cache; on buildbox-7: /var/lib/nfs/state, \
             buildbox-70 stays",
        );
        assert_eq!(
            s,
            "see <run>/smoke/a/wire/lan.pcapng and ./cases/x.toml; /srv/projects stays; cache ~ \
             ~/.cache; on <host>: /var/lib/nfs/state, buildbox-70 stays"
        );
        assert!(h.leaks(&s).is_empty(), "{:?}", h.leaks(&s));
        assert_eq!(
            h.leaks("at /srv/proj/x on buildbox-7"),
            ["/srv/proj", "buildbox-7"]
        );
    }

    #[test]
    fn a_rerun_names_its_case_file_under_cases() {
        assert_eq!(
            rerun_relative("faultline run /srv/proj/cases/nlm.toml --arm bug --accel tcg"),
            "faultline run cases/nlm.toml --arm bug --accel tcg"
        );
        assert_eq!(
            rerun_relative("faultline run smoke --accel kvm"),
            "faultline run smoke --accel kvm"
        );
    }
}
