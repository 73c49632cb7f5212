//! The files a case is read from — the case file and every file it includes — and the spans
//! that point into them.
//!
//! Every span of the raw shape is an offset into one space that holds all the files one after
//! the other, in the order they were read (the case file first, at offset 0, so a case without
//! includes has the offsets of its own text). So resolving compares and sorts spans as plain
//! numbers, and an error still names the file, line and column of the value it is about.
//!
//! Architecture invariant: a span never crosses from one file into the next; every offset of a
//! file, its end included, maps back to that file.

use std::cell::Cell;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::span::{Pos, PosError};

/// One file of a case, and where its bytes start in the shared offset space.
pub(super) struct Source {
    pub path: PathBuf,
    pub text: String,
    pub base: usize,
}

/// Every file a case was read from, in reading order.
#[derive(Default)]
pub(super) struct Sources {
    files: Vec<Source>,
}

impl Sources {
    /// Add a file; returns the offset its text starts at. One byte is left between files so
    /// that a file's end (where errors about something missing point) is still its own.
    pub fn add(&mut self, path: &Path, text: String) -> usize {
        let base = self.files.last().map_or(0, |f| f.base + f.text.len() + 1);
        self.files.push(Source {
            path: path.to_path_buf(),
            text,
            base,
        });
        base
    }

    /// The file that holds `offset`.
    pub fn file(&self, offset: usize) -> &Source {
        self.files
            .iter()
            .rev()
            .find(|f| f.base <= offset)
            .unwrap_or(&self.files[0])
    }

    pub fn files(&self) -> &[Source] {
        &self.files
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let f = self.file(offset);
        Pos::at(&f.path, &f.text, offset - f.base)
    }

    pub fn error(&self, offset: usize, message: impl Into<String>) -> PosError {
        PosError {
            pos: self.pos(offset),
            message: message.into(),
        }
    }

    /// Where `offset` is, said from the point of view of `here`: "line 12" in the same file,
    /// "line 12 of cases/common/x.toml" in another.
    pub fn line_from(&self, offset: usize, here: usize) -> String {
        let pos = self.pos(offset);
        if std::ptr::eq(self.file(offset), self.file(here)) {
            format!("line {}", pos.line)
        } else {
            format!("line {} of {}", pos.line, pos.file.display())
        }
    }
}

thread_local! {
    /// The base of the file being deserialized (see [`parse`]).
    static BASE: Cell<usize> = const { Cell::new(0) };
}

/// Deserialize `text`, a file whose bytes start at `base`: every [`Spanned`] in it gets a span
/// in the shared offset space. TOML's own errors keep spans into `text`.
pub(super) fn parse<T: DeserializeOwned>(text: &str, base: usize) -> Result<T, toml::de::Error> {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            BASE.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BASE.with(|b| b.replace(base)));
    toml::from_str(text)
}

/// A value and the span it is written at, in the shared offset space.
pub(super) struct Spanned<T> {
    span: Range<usize>,
    value: T,
}

impl<T> Spanned<T> {
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = toml::Spanned::<T>::deserialize(d)?;
        let base = BASE.with(Cell::get);
        let span = s.span();
        Ok(Spanned {
            span: span.start + base..span.end + base,
            value: s.into_inner(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_back_to_their_file() {
        let mut s = Sources::default();
        assert_eq!(s.add(Path::new("a.toml"), "x = 1\ny = 2\n".into()), 0);
        let b = s.add(Path::new("b.toml"), "z = 3\n".into());
        assert_eq!(b, 13);
        assert_eq!(s.pos(6).to_string(), "a.toml:2:1");
        assert_eq!(s.pos(12).to_string(), "a.toml:3:1");
        assert_eq!(s.pos(b + 4).to_string(), "b.toml:1:5");
        assert_eq!(s.line_from(b, 6), "line 1 of b.toml");
        assert_eq!(s.line_from(0, 6), "line 1");
    }

    #[test]
    fn spans_start_at_the_files_base() {
        #[derive(Deserialize)]
        struct T {
            z: Spanned<i64>,
        }
        let t: T = parse("z = 3\n", 13).unwrap();
        assert_eq!(t.z.span(), 17..18);
        let t: T = parse("z = 3\n", 0).unwrap();
        assert_eq!(t.z.span(), 4..5);
    }
}
