//! Positions in text files, for errors that name `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a file, 1-based like editors and compilers print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The position of byte `offset` in `text` (clamped to the end of the text).
    pub fn at(file: &Path, text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Pos {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct PosError {
    pub pos: Pos,
    pub message: String,
}

impl PosError {
    pub fn new(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> PosError {
        PosError {
            pos: Pos::at(file, text, offset),
            message: message.into(),
        }
    }

    /// A TOML parse or shape error, which carries a byte span; its own message is the
    /// multi-line form with a caret, so keep only the first line of that.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> PosError {
        let offset = err.span().map_or(0, |s| s.start);
        let message = err.message().lines().next().unwrap_or("invalid TOML").to_string();
        PosError::new(file, text, offset, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\nbb = 2\n  ccc = 3";
        let f = Path::new("x.toml");
        assert_eq!(Pos::at(f, text, 0).to_string(), "x.toml:1:1");
        assert_eq!(Pos::at(f, text, 6).to_string(), "x.toml:2:1");
        assert_eq!(Pos::at(f, text, 8).to_string(), "x.toml:2:3");
        assert_eq!(Pos::at(f, text, 15).to_string(), "x.toml:3:3");
        assert_eq!(Pos::at(f, text, 999).to_string(), "x.toml:3:10");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "é = 1";
        assert_eq!(Pos::at(Path::new("f"), text, 3).column, 3);
        assert_eq!(Pos::at(Path::new("f"), text, 1).column, 1);
    }
}
