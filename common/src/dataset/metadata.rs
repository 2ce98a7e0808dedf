//! The small text files every kind's metadata is made of: read without a
//! byte order mark, class names numbered in order.

use std::path::Path;

use crate::dataset::error::{DataError, io_err};

/// A file's text without a leading byte order mark.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

/// [`DataError::BadMetadata`] at `line` (1-based) of `path`.
pub fn bad(path: &Path, line: usize, what: String) -> DataError {
    DataError::BadMetadata {
        path: path.to_path_buf(),
        line,
        what,
    }
}

/// How a class names CSV (header, then one numbered row a class) is laid
/// out, in the words its errors use.
pub struct NumberedNames {
    /// Whether a row's number comes before its name (else after it).
    pub number_first: bool,
    /// A row's layout (`number,name`).
    pub row: &'static str,
    /// What the number is called (`class number`).
    pub number: &'static str,
    /// What the rows are in the order of (`class`).
    pub order: &'static str,
}

impl NumberedNames {
    /// Reads the names of `path`, rows numbered 1, 2, ... in order, exactly
    /// `classes` of them; errors name the line.
    pub fn read(&self, path: &Path, classes: usize) -> Result<Vec<String>, DataError> {
        let text = read_text(path)?;
        let mut names = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |what: String| bad(path, i + 1, what);
            let split = if self.number_first {
                line.split_once(',')
            } else {
                line.rsplit_once(',').map(|(name, num)| (num, name))
            };
            let (num, name) =
                split.ok_or_else(|| bad(format!("expected `{}`, found {line:?}", self.row)))?;
            let num: usize = num
                .trim()
                .parse()
                .map_err(|_| bad(format!("{} {num:?} is not a number", self.number)))?;
            if num != names.len() + 1 {
                return Err(bad(format!(
                    "{} {num}, expected {} (rows in {} order)",
                    self.number,
                    names.len() + 1,
                    self.order
                )));
            }
            names.push(name.trim().to_owned());
        }
        if names.len() != classes {
            let found = names.len();
            return Err(bad(path, 1, format!("{found} classes, expected {classes}")));
        }
        Ok(names)
    }
}
