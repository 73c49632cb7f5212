//! What an arm's record cites: the pcapng frames and the log lines its checks' explanations
//! and its faults' proofs point at, read back from the sentences `run::checks` and
//! `run::proof` write (`… in wire/lan.pcapng match …: frames 7, 9 and 3 more`, `… line(s) of
//! evidence/after/x.out match "…", the first at line 8: …`), and those sentences rewritten to
//! name frames of a cut file.
//!
//! Architecture invariant: pure (strings in, citations out). A sentence that does not have
//! the shape is cited as nothing, never an error: the bundle then shows less, not wrong
//! frames. Only the frames a sentence lists are cited (its "and N more" are not known here).

use std::collections::{BTreeMap, BTreeSet};

use crate::results::ArmRecord;

/// Frames of one pcapng (a path relative to the arm's folder) and the line of a text file that
/// an arm cites, each with who cited it (a check's or fault's name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Citations {
    /// File → frame number (1-based, as tshark numbers them) → citers.
    pub frames: BTreeMap<String, BTreeMap<u64, BTreeSet<String>>>,
    /// (file, 1-based line) → citers.
    pub lines: BTreeMap<(String, u64), BTreeSet<String>>,
}

impl Citations {
    /// Everything `arm`'s checks and faults cite.
    pub fn of_arm(arm: &ArmRecord) -> Citations {
        let mut c = Citations::default();
        for check in &arm.checks {
            if let Some(e) = &check.explanation {
                c.add(&check.name, e);
            }
        }
        for f in &arm.faults {
            c.add(&f.name, &f.evidence);
        }
        c
    }

    /// Adds what `text` cites, in `citer`'s name.
    pub fn add(&mut self, citer: &str, text: &str) {
        for (file, numbers) in frame_lists(text) {
            let entry = self.frames.entry(file.to_string()).or_default();
            for n in numbers.numbers {
                entry.entry(n).or_default().insert(citer.to_string());
            }
        }
        for (file, line) in line_cites(text) {
            self.lines
                .entry((file.to_string(), line))
                .or_default()
                .insert(citer.to_string());
        }
    }
}

/// A frame list inside a sentence: its numbers and the byte range it covers (without any
/// "and N more").
#[derive(Debug, Clone, PartialEq, Eq)]
struct FrameList {
    numbers: Vec<u64>,
    start: usize,
    end: usize,
}

/// Each `wire/<segment>.pcapng` a sentence names, with the frame list (`frames 1, 2, 3`) that
/// follows it before the next file is named.
fn frame_lists(text: &str) -> Vec<(&str, FrameList)> {
    let files = pcapng_names(text);
    let mut out = Vec::new();
    for (i, &(start, end)) in files.iter().enumerate() {
        let stop = files.get(i + 1).map_or(text.len(), |n| n.0);
        let mut from = end;
        while let Some(at) = text[from..stop].find("frames ") {
            let list_start = from + at + "frames ".len();
            let list = number_list(text, list_start, stop);
            if !list.numbers.is_empty() {
                out.push((&text[start..end], list));
                break;
            }
            from = list_start;
        }
    }
    out
}

/// Byte ranges of `wire/<name>.pcapng` in `text`.
fn pcapng_names(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("wire/") {
        let start = from + at;
        let name_end = text[start + 5..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .map_or(text.len(), |e| start + 5 + e);
        let name = &text[start..name_end];
        // A sentence may end right after the file name: "… in wire/lan.pcapng."
        let trimmed = name.trim_end_matches('.');
        if let Some(base) = trimmed.strip_suffix(".pcapng") {
            if base.len() > 5 {
                out.push((start, start + trimmed.len()));
            }
        }
        from = name_end.max(start + 5);
    }
    out
}

/// `1, 2, 3` starting at `start` (digits right there), up to `stop`.
fn number_list(text: &str, start: usize, stop: usize) -> FrameList {
    let mut numbers = Vec::new();
    let mut pos = start;
    let mut end = start;
    loop {
        let digits = text[pos..stop].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        match text[pos..pos + digits].parse() {
            Ok(n) => numbers.push(n),
            Err(_) => break,
        }
        end = pos + digits;
        if text[end..stop].starts_with(", ") {
            pos = end + 2;
        } else {
            break;
        }
    }
    FrameList { numbers, start, end }
}

/// `(file, line)` of each "line(s) of <file> match "…", the first at line <n>" in `text`.
fn line_cites(text: &str) -> Vec<(&str, u64)> {
    const OF: &str = "line(s) of ";
    const FIRST: &str = "the first at line ";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(OF) {
        let file_start = from + at + OF.len();
        let Some(file_len) = text[file_start..].find(" match ") else {
            break;
        };
        let file = &text[file_start..file_start + file_len];
        let rest = file_start + file_len;
        let Some(f) = text[rest..].find(FIRST) else {
            break;
        };
        let n_start = rest + f + FIRST.len();
        let digits = text[n_start..].bytes().take_while(u8::is_ascii_digit).count();
        if let (Ok(n), false) = (text[n_start..n_start + digits].parse(), file.contains(' ')) {
            out.push((file, n));
        }
        from = n_start;
    }
    out
}

/// `text` with every cited frame number written as the cut file's number and the original,
/// `#4 (orig. 256)`, using `map` (file → original → cut). A number with no cut frame keeps
/// its original form.
pub fn rewrite_frames(text: &str, map: &BTreeMap<String, BTreeMap<u64, u64>>) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut copied = 0;
    for (file, list) in frame_lists(text) {
        let Some(m) = map.get(file) else { continue };
        out.push_str(&text[copied..list.start]);
        let shown: Vec<String> = list
            .numbers
            .iter()
            .map(|n| match m.get(n) {
                Some(c) => format!("#{c} (orig. {n})"),
                None => n.to_string(),
            })
            .collect();
        out.push_str(&shown.join(", "));
        copied = list.end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_check_cites_the_frames_it_lists_and_not_its_and_more() {
        let mut c = Citations::default();
        c.add(
            "a-lock",
            "14 frame(s) in wire/lan.pcapng match NLM4_LOCK call with reclaim=0 from imap1 to filer: frames 253, 871, 889 and 11 more",
        );
        let lan = &c.frames["wire/lan.pcapng"];
        assert_eq!(lan.keys().copied().collect::<Vec<_>>(), [253, 871, 889]);
        assert!(lan[&253].contains("a-lock"));
    }

    #[test]
    fn a_failing_count_and_a_wire_fault_proof_cite_their_frames() {
        let mut c = Citations::default();
        c.add(
            "too-many",
            "3 frames in wire/lan.pcapng while step `x` on imap1 (t=1.0–2.0 s) ran match frame from filer (frames 4, 5, 6); expected exactly 1",
        );
        c.add(
            "grant-lost",
            "started after step mount ended at t=3.8 s; rule added on segment lan; the switch dropped 2 frame(s): wire/san.pcapng frames 297, 353",
        );
        assert_eq!(c.frames["wire/lan.pcapng"].len(), 3);
        assert_eq!(
            c.frames["wire/san.pcapng"].keys().copied().collect::<Vec<_>>(),
            [297, 353]
        );
    }

    #[test]
    fn an_absence_cites_no_frame() {
        let mut c = Citations::default();
        c.add(
            "reclaim",
            "none of the 1960 frames in wire/lan.pcapng matches NLM4_LOCK call with reclaim=1 from imap1 to filer; expected at least 1",
        );
        assert!(c.frames.is_empty());
    }

    #[test]
    fn a_log_check_cites_its_file_and_line() {
        let mut c = Citations::default();
        c.add(
            "statd",
            "1 line(s) of evidence/after/statd-imap1.out match \"Can't callback\", the first at line 8: Dec 03 imap1 rpc.statd[390]: Can't callback",
        );
        assert!(c.lines[&("evidence/after/statd-imap1.out".to_string(), 8)].contains("statd"));
    }

    #[test]
    fn rewriting_names_the_cut_frame_and_the_original() {
        let map = BTreeMap::from([(
            "wire/lan.pcapng".to_string(),
            BTreeMap::from([(253, 4), (871, 11)]),
        )]);
        let s = rewrite_frames(
            "2 frame(s) in wire/lan.pcapng match x: frames 253, 871 and 3 more",
            &map,
        );
        assert_eq!(
            s,
            "2 frame(s) in wire/lan.pcapng match x: frames #4 (orig. 253), #11 (orig. 871) and 3 more"
        );
    }

    #[test]
    fn garbled_sentences_cite_nothing_and_do_not_panic() {
        for t in [
            "wire/",
            "wire/.pcapng frames 1",
            "frames 1, 2 in wire/lan.pcapng",
            "wire/lan.pcapng frames ",
            "wire/lan.pcapng frames 99999999999999999999999",
            "line(s) of  match the first at line ",
            "line(s) of x match \"y\", the first at line 18446744073709551616",
            "wire/lan.pcapng: frames 1, wire/b.pcapng frames 2,",
        ] {
            let mut c = Citations::default();
            c.add("x", t);
            let _ = rewrite_frames(t, &BTreeMap::new());
        }
    }
}
