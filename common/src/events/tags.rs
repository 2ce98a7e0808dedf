//! Tag files: `tags/<recording>.csv`, a header `class,startTime_ev,endTime_ev`
//! and one row per class in class order. The numbers are event indices: sample
//! `i` of a recording is `events[start_i .. end_i]` (half-open).

use std::path::{Path, PathBuf};

/// Number of gesture classes in SL-Animals-DVS.
pub const CLASSES: usize = 19;

/// One row of a tag file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The `class` column as written (the real files use 1-based numbers).
    pub class: String,
    /// First event index of the sample.
    pub start: usize,
    /// One past the last event index.
    pub end: usize,
}

/// Why a tag file is unusable. Every variant names the file; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum TagsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The first line is not the expected header.
    #[error("{path}, line 1: expected header `class,startTime_ev,endTime_ev`, found {found:?}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The line found.
        found: String,
    },
    /// A row that does not have three fields or whose numbers do not parse.
    #[error("{path}, line {line}: cannot parse {found:?} as `class,start,end` (event indices)")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// The row.
        found: String,
    },
    /// Not 19 rows.
    #[error("{path}: {found} tag rows, expected {expected}")]
    RowCount {
        /// The file.
        path: PathBuf,
        /// Rows found.
        found: usize,
        /// Rows expected (19).
        expected: usize,
    },
    /// `start >= end`, or a start not after the previous row's start.
    #[error(
        "{path}, line {line}: indices not increasing: start {start}, end {end}, previous start {previous_start:?}"
    )]
    NotIncreasing {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// The row's start.
        start: usize,
        /// The row's end.
        end: usize,
        /// The previous row's start.
        previous_start: Option<usize>,
    },
    /// An end index beyond the recording's events.
    #[error("{path}, line {line}: end index {end} is beyond the recording's {events} events")]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// The row's end.
        end: usize,
        /// Events in the recording.
        events: usize,
    },
}

fn parse_index(field: &str) -> Option<usize> {
    let f = field.trim();
    if let Ok(v) = f.parse::<usize>() {
        return Some(v);
    }
    // pandas may write "1146.0"; accept whole numbers only.
    let v: f64 = f.parse().ok()?;
    (v >= 0.0 && v.fract() == 0.0 && v < 9.0e15).then_some(v as usize)
}

/// Parses tag-file text; checks the header, 19 rows and increasing indices
/// (not the upper bound: see [`check_range`]). `path` names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Tag>, TagsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| l.trim()).unwrap_or("");
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 3 || cols[1] != "startTime_ev" || cols[2] != "endTime_ev" {
        return Err(TagsError::BadHeader {
            path: path.to_path_buf(),
            found: header.to_string(),
        });
    }
    let mut tags = Vec::with_capacity(CLASSES);
    let mut previous_start = None;
    for (i, line) in lines {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split(',').collect();
        let bad = || TagsError::BadRow {
            path: path.to_path_buf(),
            line: line_no,
            found: line.to_string(),
        };
        if fields.len() < 3 {
            return Err(bad());
        }
        let start = parse_index(fields[1]).ok_or_else(bad)?;
        let end = parse_index(fields[2]).ok_or_else(bad)?;
        if start >= end || previous_start.is_some_and(|p| start <= p) {
            return Err(TagsError::NotIncreasing {
                path: path.to_path_buf(),
                line: line_no,
                start,
                end,
                previous_start,
            });
        }
        previous_start = Some(start);
        tags.push(Tag {
            class: fields[0].trim().to_string(),
            start,
            end,
        });
    }
    if tags.len() != CLASSES {
        return Err(TagsError::RowCount {
            path: path.to_path_buf(),
            found: tags.len(),
            expected: CLASSES,
        });
    }
    Ok(tags)
}

/// Reads and parses a tag file.
pub fn read(path: &Path) -> Result<Vec<Tag>, TagsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TagsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Checks every end index against the recording's number of events.
pub fn check_range(tags: &[Tag], events: usize, path: &Path) -> Result<(), TagsError> {
    for (i, t) in tags.iter().enumerate() {
        if t.end > events {
            return Err(TagsError::OutOfRange {
                path: path.to_path_buf(),
                line: i + 2,
                end: t.end,
                events,
            });
        }
    }
    Ok(())
}

/// Writes tag-file text for the given `(start, end)` pairs (classes numbered
/// from 1, as the real files do).
pub fn to_csv(ranges: &[(usize, usize)]) -> String {
    let mut s = String::from("class,startTime_ev,endTime_ev\n");
    for (i, (start, end)) in ranges.iter().enumerate() {
        s.push_str(&format!("{},{},{}\n", i + 1, start, end));
    }
    s
}
