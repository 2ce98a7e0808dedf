//! DVS128 Gesture (IBM) as the download comes: a folder `DvsGesture/` holding
//! `userNN_<lighting>.aedat` (AEDAT 3.1), `userNN_<lighting>_labels.csv`
//! (`class,startTime_usec,endTime_usec`, classes numbered from 1),
//! `trials_to_train.txt`, `trials_to_test.txt` (one `userNN_<lighting>.aedat`
//! a line) and `gesture_mapping.csv` (`action,label`, 11 rows).
//!
//! A sample is the events of a recording with `start ≤ t < end` for one
//! label row, as SpikingJelly cuts them. The person of a recording is its
//! `userNN` prefix; the lighting condition is the rest of its name.

pub mod import;
pub mod kind;
pub mod published;
pub mod synth;

use std::path::{Path, PathBuf};

use crate::dataset::error::DataError;
use crate::dataset::kind::Label;
use crate::dataset::metadata::{NumberedNames, bad, read_text};
use crate::dataset::variant::Variant;
use crate::events::Event;

/// The folder the download unpacks to.
pub const FOLDER: &str = "DvsGesture";
/// The training trials of the official split.
pub const TRAIN_LIST: &str = "trials_to_train.txt";
/// The test trials of the official split.
pub const TEST_LIST: &str = "trials_to_test.txt";
/// The class names, `action,label`.
pub const MAPPING: &str = "gesture_mapping.csv";
/// The header of a labels file.
pub const LABELS_HEADER: &str = "class,startTime_usec,endTime_usec";
/// Number of gesture classes.
pub const CLASSES: usize = 11;
/// The 11 class names in class order, as `gesture_mapping.csv` gives them.
pub const CLASS_NAMES: [&str; CLASSES] = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
];
/// The lighting conditions of the real recordings.
pub const LIGHTINGS: [&str; 5] = ["fluorescent", "fluorescent_led", "lab", "led", "natural"];
/// The recordings under fluorescent light (named as the file names spell
/// the lighting, which is what [`crate::dataset::kind::DataSetKind::keeps`] compares).
pub const FLUORESCENT: Variant = Variant::new(2, "fluorescent", None);
/// The recordings under fluorescent and LED light.
pub const FLUORESCENT_LED: Variant = Variant::new(3, "fluorescent_led", None);
/// The recordings under lab light.
pub const LAB: Variant = Variant::new(4, "lab", None);
/// The recordings under LED light.
pub const LED: Variant = Variant::new(5, "led", None);
/// The recordings under natural light.
pub const NATURAL: Variant = Variant::new(6, "natural", None);
/// Users of the official training split are 1..=this; the rest are tested.
pub const LAST_TRAIN_USER: u32 = 23;

/// The folder of a root holding the download's files: `root/DvsGesture` when
/// it holds the training list, else `root` itself when it does; `None` when
/// neither does.
pub fn find_dir(root: &Path) -> Option<PathBuf> {
    let sub = root.join(FOLDER);
    if sub.join(TRAIN_LIST).is_file() {
        Some(sub)
    } else if root.join(TRAIN_LIST).is_file() {
        Some(root.to_path_buf())
    } else {
        None
    }
}

/// The labels file of `recording` in the download's folder `dir`:
/// `<recording>_labels.csv`.
pub fn labels_path(dir: &Path, recording: &str) -> PathBuf {
    dir.join(format!("{recording}_labels.csv"))
}

/// The person of a recording: its name up to the first `_` (`user07`).
pub fn person_of(recording: &str) -> &str {
    recording.split_once('_').map_or(recording, |(p, _)| p)
}

/// The lighting condition of a recording: its name after the first `_`.
pub fn lighting_of(recording: &str) -> &str {
    recording.split_once('_').map_or("", |(_, l)| l)
}

/// The user number of a recording named `userNN_...`, if it has one.
pub fn user_number(recording: &str) -> Option<u32> {
    person_of(recording).strip_prefix("user")?.parse().ok()
}

/// Reads a trials list: one `userNN_<lighting>.aedat` a line (the extension
/// may be left out), blank lines ignored; names come back without it.
pub fn read_trials(path: &Path) -> Result<Vec<(usize, String)>, DataError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.trim();
        if entry.is_empty() {
            continue;
        }
        let name = entry.strip_suffix(".aedat").unwrap_or(entry);
        let bad = |what: &str| bad(path, i + 1, format!("{entry:?} {what}"));
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(bad("is not a trial name"));
        }
        if user_number(name).is_none() {
            return Err(bad("is not named userNN_<lighting>"));
        }
        out.push((i + 1, name.to_owned()));
    }
    Ok(out)
}

/// The text of a trials list naming `names`, one `<name>.aedat` a line.
pub fn trials_text<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names.into_iter().map(|n| format!("{n}.aedat\n")).collect()
}

/// Reads both trial lists of `dir` into the recordings, training list first;
/// a trial named twice (in one list or both) is an error naming the line.
pub fn read_recordings(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = Vec::new();
    for list in [TRAIN_LIST, TEST_LIST] {
        let path = dir.join(list);
        for (line, name) in read_trials(&path)? {
            if names.contains(&name) {
                return Err(bad(&path, line, format!("{name:?} is listed twice")));
            }
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(bad(
            &dir.join(TRAIN_LIST),
            1,
            "the lists name no trials".into(),
        ));
    }
    Ok(names)
}

/// Reads `gesture_mapping.csv` (`action,label`, rows in label order from 1).
pub fn read_mapping(path: &Path) -> Result<Vec<String>, DataError> {
    NumberedNames {
        number_first: false,
        row: "action,label",
        number: "label",
        order: "label",
    }
    .read(path, CLASSES)
}

/// The mapping file as the download ships it.
pub fn mapping_csv() -> String {
    let mut s = String::from("action,label\n");
    for (i, name) in CLASS_NAMES.iter().enumerate() {
        s.push_str(&format!("{name},{}\n", i + 1));
    }
    s
}

/// Parses a labels file's text; `path` names it in errors. Checks the header,
/// classes in 1..=11 and `start < end`.
pub fn parse_labels(text: &str, path: &Path) -> Result<Vec<Label>, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map_or("", |(_, l)| l.trim());
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 3 || cols[1] != "startTime_usec" || cols[2] != "endTime_usec" {
        return Err(bad(
            path,
            1,
            format!("expected header `{LABELS_HEADER}`, found {header:?}"),
        ));
    }
    let mut labels = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |what: String| bad(path, i + 1, what);
        let row = || bad(format!("cannot parse {line:?} as `class,start,end`"));
        if f.len() < 3 {
            return Err(row());
        }
        let class: usize = f[0].parse().map_err(|_| row())?;
        let start_us: i64 = f[1].parse().map_err(|_| row())?;
        let end_us: i64 = f[2].parse().map_err(|_| row())?;
        if !(1..=CLASSES).contains(&class) {
            return Err(bad(format!("class {class} is not in 1..={CLASSES}")));
        }
        if start_us >= end_us {
            return Err(bad(format!(
                "start {start_us} µs is not before end {end_us} µs"
            )));
        }
        labels.push(Label {
            class: class - 1,
            start_us,
            end_us,
        });
    }
    if labels.is_empty() {
        return Err(bad(path, 1, "no label rows".into()));
    }
    Ok(labels)
}

/// Reads and parses a labels file.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, DataError> {
    parse_labels(&read_text(path)?, path)
}

/// The labels file text for `labels` (classes written from 1).
pub fn labels_csv(labels: &[Label]) -> String {
    let mut s = format!("{LABELS_HEADER}\n");
    for l in labels {
        s.push_str(&format!("{},{},{}\n", l.class + 1, l.start_us, l.end_us));
    }
    s
}

/// The events of one label: those with `start ≤ t < end`. `events` must be in
/// time order (every reader returns them so).
pub fn cut_one(events: &[Event], label: &Label) -> Vec<Event> {
    let lo = events.partition_point(|e| e.t < label.start_us);
    let hi = events.partition_point(|e| e.t < label.end_us).max(lo);
    events[lo..hi].to_vec()
}

/// One sample per label row, in row order (see [`cut_one`]).
pub fn cut(events: &[Event], labels: &[Label]) -> Vec<Vec<Event>> {
    labels.iter().map(|l| cut_one(events, l)).collect()
}

/// The data set's own split of `recordings` (in their order): users
/// 1..=[`LAST_TRAIN_USER`] train, the others test, nothing validates
/// (`[protocol] kind = "official"`).
pub fn official_split(recordings: &[String]) -> (Vec<String>, Vec<String>) {
    recordings
        .iter()
        .cloned()
        .partition(|r| user_number(r).is_some_and(|u| u <= LAST_TRAIN_USER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_is_half_open_in_time() {
        let events: Vec<Event> = (0..10).map(|t| Event::new(t * 10, 1, 1, true)).collect();
        let label = Label {
            class: 0,
            start_us: 20,
            end_us: 50,
        };
        let got: Vec<i64> = cut_one(&events, &label).iter().map(|e| e.t).collect();
        assert_eq!(got, vec![20, 30, 40]);
    }

    #[test]
    fn official_split_is_by_user_number() {
        let recs: Vec<String> = ["user01_lab", "user23_led", "user24_lab", "user29_natural"]
            .map(String::from)
            .to_vec();
        let (train, test) = official_split(&recs);
        assert_eq!(train, ["user01_lab", "user23_led"]);
        assert_eq!(test, ["user24_lab", "user29_natural"]);
    }

    #[test]
    fn names_give_person_and_lighting() {
        assert_eq!(person_of("user07_fluorescent_led"), "user07");
        assert_eq!(lighting_of("user07_fluorescent_led"), "fluorescent_led");
        assert_eq!(user_number("user24_lab"), Some(24));
    }

    #[test]
    fn bad_labels_name_the_line() {
        let p = Path::new("x_labels.csv");
        let e = parse_labels("class,startTime_usec,endTime_usec\n1,5,9\n12,1,2\n", p);
        let msg = e.map(|_| ()).unwrap_err().to_string();
        assert!(msg.contains("x_labels.csv, line 3"), "{msg}");
        let e = parse_labels("class,a,b\n", p).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("line 1"));
    }

    #[test]
    fn mapping_round_trips() {
        let dir = std::env::temp_dir().join(format!("spikecv-mapping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MAPPING);
        std::fs::write(&path, mapping_csv()).unwrap();
        assert_eq!(read_mapping(&path).unwrap(), CLASS_NAMES.to_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
