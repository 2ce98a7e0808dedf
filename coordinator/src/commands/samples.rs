//! Samples named `<recording>_<NN>` on the data tools' command lines: an
//! SL-Animals sample by class, a DVS128 Gesture sample by label row (checked
//! against the root), and the `samples.csv` that lists the rows written.

use std::path::{Path, PathBuf};

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::kind::Label;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::slicing::{parse_sample_name, sample_name};
use spikecv_common::events::tags::CLASSES;

use super::data_error::{DataCmdError, MAX_ROWS, io_at};

/// The file, beside a DVS128 Gesture output's samples, giving each sample's
/// recording, label row and class.
pub const SAMPLES_CSV: &str = "samples.csv";

/// One DVS128 Gesture sample by name: `<recording>_<NN>`, NN its label row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSample {
    /// `<recording>_<NN>`.
    pub(crate) name: String,
    /// The recording.
    pub(crate) recording: String,
    /// The label row (0-based), the sample's index in the recording.
    pub(crate) row: usize,
    /// The row's class (0-based) and time window.
    pub(crate) label: Label,
}

/// Every label row of a DVS128 Gesture recording as a sample, in row order.
pub(crate) fn recording_rows(
    ds: &Dataset,
    recording: &str,
) -> Result<Vec<RowSample>, DataCmdError> {
    let labels = ds.labels(recording)?;
    if labels.len() > MAX_ROWS {
        return Err(DataCmdError::TooManyRows {
            labels: ds.tags_path(recording),
            rows: labels.len(),
        });
    }
    Ok(labels
        .into_iter()
        .enumerate()
        .map(|(row, label)| RowSample {
            name: sample_name(recording, row),
            recording: recording.to_owned(),
            row,
            label,
        })
        .collect())
}

/// The DVS128 Gesture sample `name` (`<recording>_<NN>`, NN a label row),
/// checked against the root: a recording of its trial lists, a row of its
/// labels file.
pub(crate) fn parse_row_sample(ds: &Dataset, name: &str) -> Result<RowSample, DataCmdError> {
    let (recording, row) = parse_sample_name(name).ok_or_else(|| DataCmdError::BadRowName {
        name: name.to_owned(),
    })?;
    if !ds.recordings(Variant::WHOLE).iter().any(|r| r == recording) {
        return Err(DataCmdError::UnknownTrial {
            sample: name.to_owned(),
            recording: recording.to_owned(),
            lists: ds.kind().list_files(ds.root()),
        });
    }
    let rows = recording_rows(ds, recording)?;
    let count = rows.len();
    rows.into_iter()
        .nth(row)
        .ok_or_else(|| DataCmdError::NoSuchRow {
            sample: name.to_owned(),
            row,
            rows: count,
            labels: ds.tags_path(recording),
        })
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// [`SAMPLES_CSV`]'s text for `samples`: `sample,recording,row,class,
/// class_name,start_us,end_us`, the class 0-based and named as the root's
/// `gesture_mapping.csv` names it.
pub(crate) fn samples_csv(ds: &Dataset, samples: &[RowSample]) -> String {
    let mut text = String::from("sample,recording,row,class,class_name,start_us,end_us\n");
    for s in samples {
        let class_name = ds
            .class_names()
            .get(s.label.class)
            .map_or("", String::as_str);
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_field(&s.name),
            csv_field(&s.recording),
            s.row,
            s.label.class,
            csv_field(class_name),
            s.label.start_us,
            s.label.end_us
        ));
    }
    text
}

/// Writes [`SAMPLES_CSV`] into `dir`; returns its path.
pub(crate) fn write_samples_csv(
    ds: &Dataset,
    dir: &Path,
    samples: &[RowSample],
) -> Result<PathBuf, DataCmdError> {
    let path = dir.join(SAMPLES_CSV);
    std::fs::write(&path, samples_csv(ds, samples)).map_err(io_at(&path))?;
    Ok(path)
}

/// `<recording>_<NN>` with NN a class index.
pub(crate) fn parse_sample(name: &str) -> Result<(String, usize), DataCmdError> {
    match parse_sample_name(name) {
        Some((rec, class)) if class < CLASSES => Ok((rec.to_string(), class)),
        _ => Err(DataCmdError::BadSample {
            name: name.to_string(),
        }),
    }
}
