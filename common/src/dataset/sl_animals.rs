//! SL-Animals-DVS as downloaded: its file list, class definitions and their
//! names (the root's `filelist.txt` and
//! `SL-Animals-DVS_gestures_definitions.csv`).

pub mod import;
pub mod kind;
pub mod published;
pub mod scan;

use std::path::Path;

use crate::dataset::error::{DataError, io_err};
use crate::dataset::metadata::{NumberedNames, bad};
use crate::dataset::variant::Variant;
use crate::events::tags::CLASSES;

/// The recordings without the S3 (`_indoor`) ones.
pub const REDUCED: Variant = Variant::new(1, "reduced", Some("without _indoor"));

/// The file list's name in a root.
pub const FILE_LIST: &str = "filelist.txt";
/// The class definitions' name in a root.
pub const CLASS_DEFS: &str = "SL-Animals-DVS_gestures_definitions.csv";
/// The 19 class names in class order (as the real definitions file gives them).
pub const CLASS_NAMES: [&str; CLASSES] = [
    "cat",
    "dog",
    "camel",
    "cow",
    "sheep",
    "goat",
    "wolf",
    "squirrel",
    "mouse",
    "dolphin",
    "shark",
    "lion",
    "monkey",
    "snake",
    "spider",
    "butterfly",
    "bird",
    "duck",
    "zebra",
];

/// Reads the class definitions CSV (`class,class Def`, rows `1,cat` ... `19,zebra`).
pub fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    NumberedNames {
        number_first: true,
        row: "number,name",
        number: "class number",
        order: "class",
    }
    .read(path, CLASSES)
}

/// Reads a file list: one recording name a line, blank lines ignored.
pub fn read_file_list(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut names: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        let bad = |what: String| bad(path, i + 1, what);
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(bad(format!("{name:?} is not a plain recording name")));
        }
        if names.iter().any(|n| n == name) {
            return Err(bad(format!("{name:?} is listed twice")));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(bad(path, 1, "the file list names no recordings".into()));
    }
    Ok(names)
}
