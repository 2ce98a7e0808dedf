//! A synthetic DVS128 Gesture download: `<out>/DvsGesture/` in the layout IBM
//! ships ([`crate::dataset::dvs_gesture`]), for tests and the local run. A few users (some
//! of the official training users 1-23, some of the test users 24-29), two
//! lighting conditions each, 11 gestures per recording in class order,
//! written as AEDAT 3.1 by [`crate::events::aedat::v3::write`].
//!
//! The motions are [`crate::dataset::synth`]'s (the first 11 of its classes); each
//! label row spans its gesture's events exactly, in µs (`start` = its first
//! event's time, `end` = one past its last), so the cut by time gives them.

use std::path::{Path, PathBuf};

use crate::dataset::dvs_gesture::{
    self, CLASSES, FOLDER, LIGHTINGS, MAPPING, TEST_LIST, TRAIN_LIST, trials_text,
};
use crate::dataset::kind::Label;
use crate::dataset::synth::{self, SynthError, SynthOptions, SynthSummary, write_file};
use crate::events::aedat::v3;

/// The users written: four training users and two test users.
pub const USERS: [u32; 6] = [1, 2, 3, 4, 24, 25];

/// The recording names written, training users first: `userNN_<lighting>`,
/// two lighting conditions per user.
pub fn recording_names() -> Vec<String> {
    USERS
        .iter()
        .enumerate()
        .flat_map(|(i, u)| {
            [LIGHTINGS[i % 5], LIGHTINGS[(i + 2) % 5]].map(|l| format!("user{u:02}_{l}"))
        })
        .collect()
}

/// The order of the gestures in recording `index`: every class once, the
/// list rotated by the index, so a sample's row is not its class (labels come
/// from the labels file, never from a row's position).
pub fn gesture_order(index: usize) -> Vec<usize> {
    (0..CLASSES).map(|k| (k + index) % CLASSES).collect()
}

/// Writes one recording and its labels; returns (events, bytes, samples).
fn write_recording(
    dir: &Path,
    opts: &SynthOptions,
    index: usize,
    name: &str,
) -> Result<(u64, u64, usize), SynthError> {
    let order = gesture_order(index);
    let (events, ranges) = synth::recording_in_order(opts.seed, index, name, opts.size, &order);
    let labels: Vec<Label> = ranges
        .iter()
        .zip(order)
        .filter_map(|(&(start, end), class)| {
            let (first, last) = (events.get(start)?, events.get(end.checked_sub(1)?)?);
            Some(Label {
                class,
                start_us: first.t,
                end_us: last.t + 1,
            })
        })
        .collect();
    let path = dir.join(format!("{name}.aedat"));
    let bytes = synth::write_events(&path, |w| v3::write(w, "DVS128", &events, 4096))?;
    write_file(
        &dvs_gesture::labels_path(dir, name),
        dvs_gesture::labels_csv(&labels).as_bytes(),
    )?;
    Ok((events.len() as u64, bytes, labels.len()))
}

/// Writes `<out>/DvsGesture/` (created if missing); `opts.recordings` keeps
/// the first N recordings of [`recording_names`]. Deterministic for a seed.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    let all = recording_names();
    let n = synth::recording_count(opts, all.len())?;
    let names = &all[..n];
    let dir: PathBuf = out.join(FOLDER);
    std::fs::create_dir_all(&dir).map_err(|source| SynthError::Io {
        path: dir.clone(),
        source,
    })?;
    let (mut events, mut bytes, mut samples) = (0, 0, 0);
    for (i, name) in names.iter().enumerate() {
        let (e, b, s) = write_recording(&dir, opts, i, name)?;
        events += e;
        bytes += b;
        samples += s;
    }
    let (train, test) = dvs_gesture::official_split(names);
    write_file(&dir.join(MAPPING), dvs_gesture::mapping_csv().as_bytes())?;
    write_file(&dir.join(TEST_LIST), trials_text(&test).as_bytes())?;
    // Last: the training list is what makes the folder a data set.
    write_file(&dir.join(TRAIN_LIST), trials_text(&train).as_bytes())?;
    Ok(SynthSummary {
        recordings: names.to_vec(),
        samples,
        events,
        bytes,
    })
}
