//! Which data set a root holds, and what the data layer needs to know of it:
//! its class names, how its samples are cut, who recorded what (the unit of
//! the folds) and the variants it offers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset::dvs_gesture as gesture;

/// A name that is none of those a list offers (a data set kind, a variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key {key}: {name:?} is not one of {offered}")]
pub struct UnknownName {
    /// The dotted key the name was given for, e.g. `data.kind`.
    pub key: &'static str,
    /// The name given.
    pub name: String,
    /// The names offered, comma-separated.
    pub offered: String,
}

/// `[data] kind`: the data set of a root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    /// SL-Animals-DVS (the default): `recordings/`, `tags/`, `filelist.txt`.
    #[default]
    #[serde(rename = "sl-animals")]
    SlAnimals,
    /// DVS128 Gesture (IBM): the `DvsGesture/` folder as downloaded.
    #[serde(rename = "dvs-gesture")]
    DvsGesture,
}

impl DataKind {
    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::SlAnimals => "sl-animals",
            DataKind::DvsGesture => "dvs-gesture",
        }
    }

    /// Whether this is the default (left out of serialised configs, so job
    /// ids of SL-Animals experiments stay as they were).
    pub fn is_default(&self) -> bool {
        *self == DataKind::default()
    }

    /// The variants (`protocol.variants`) this data set offers.
    pub fn variants(self) -> &'static [&'static str] {
        match self {
            DataKind::SlAnimals => &["whole", "reduced"],
            DataKind::DvsGesture => &[
                "whole",
                "fluorescent",
                "fluorescent_led",
                "lab",
                "led",
                "natural",
            ],
        }
    }

    /// Whether the data set has a train/test split of its own (`[protocol]
    /// kind = "official"`).
    pub fn has_official_split(self) -> bool {
        self == DataKind::DvsGesture
    }

    /// How many classes the data set has.
    pub fn classes(self) -> usize {
        match self {
            DataKind::SlAnimals => crate::events::tags::CLASSES,
            DataKind::DvsGesture => gesture::CLASSES,
        }
    }

    /// How the data set's samples are cut from its recordings.
    pub fn cut(self) -> SampleCut {
        match self {
            DataKind::SlAnimals => SampleCut::EventIndices,
            DataKind::DvsGesture => SampleCut::TimeWindows,
        }
    }

    /// The person of a recording (the unit the folds keep together).
    /// SL-Animals: the recording itself (the reference folds over recordings,
    /// one per person); DVS128 Gesture: its `userNN` prefix.
    pub fn person_of(self, recording: &str) -> &str {
        match self {
            DataKind::SlAnimals => recording,
            DataKind::DvsGesture => gesture::person_of(recording),
        }
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sl-animals" => Ok(DataKind::SlAnimals),
            "dvs-gesture" => Ok(DataKind::DvsGesture),
            other => Err(UnknownName {
                key: "data.kind",
                name: other.to_owned(),
                offered: "sl-animals, dvs-gesture".to_owned(),
            }),
        }
    }
}

/// How samples are cut from a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleCut {
    /// `tags/<name>.csv` rows of event indices, one per class in class order.
    EventIndices,
    /// `<name>_labels.csv` rows of µs times (`start ≤ t < end`), any number,
    /// each naming its class.
    TimeWindows,
}

/// An opened data set, described: what the data layer asks of it instead of
/// SL-Animals' constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Which data set.
    pub kind: DataKind,
    /// Class names in class order (from the root's files).
    pub class_names: Vec<String>,
    /// How samples are cut.
    pub cut: SampleCut,
    /// The variants it offers.
    pub variants: &'static [&'static str],
    /// The people in order of first appearance in the recording list.
    pub people: Vec<String>,
}

impl Description {
    /// Describes `recordings` of a data set of `kind` with `class_names`.
    pub fn new(kind: DataKind, class_names: Vec<String>, recordings: &[String]) -> Self {
        Self {
            kind,
            class_names,
            cut: kind.cut(),
            variants: kind.variants(),
            people: people(kind, recordings),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
}

/// The distinct people of `recordings`, in order of first appearance.
pub fn people(kind: DataKind, recordings: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in recordings {
        let p = kind.person_of(r);
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// Which recordings a job uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Every recording of the file list.
    Whole,
    /// The file list without the S3 (`_indoor`) recordings (SL-Animals).
    Reduced,
    /// DVS128 Gesture's recordings under fluorescent light.
    Fluorescent,
    /// DVS128 Gesture's recordings under fluorescent and LED light.
    FluorescentLed,
    /// DVS128 Gesture's recordings under lab light.
    Lab,
    /// DVS128 Gesture's recordings under LED light.
    Led,
    /// DVS128 Gesture's recordings under natural light.
    Natural,
}

impl Variant {
    /// Every variant, in order.
    pub const ALL: [Variant; 7] = [
        Variant::Whole,
        Variant::Reduced,
        Variant::Fluorescent,
        Variant::FluorescentLed,
        Variant::Lab,
        Variant::Led,
        Variant::Natural,
    ];

    /// The name used in files, flags and reports (a lighting variant: the
    /// lighting as DVS128 Gesture's file names spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Whole => "whole",
            Variant::Reduced => "reduced",
            Variant::Fluorescent => "fluorescent",
            Variant::FluorescentLed => "fluorescent_led",
            Variant::Lab => "lab",
            Variant::Led => "led",
            Variant::Natural => "natural",
        }
    }

    /// Whether the variant keeps `recording` (by its name).
    pub fn keeps(self, recording: &str) -> bool {
        match self {
            Variant::Whole => true,
            Variant::Reduced => !recording.contains("_indoor"),
            lighting => crate::dataset::dvs_gesture::lighting_of(recording) == lighting.as_str(),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                key: "variant",
                name: s.to_owned(),
                offered: Variant::ALL.map(Variant::as_str).join(", "),
            })
    }
}

/// The recordings a variant uses, in file-list order (`Reduced` drops
/// `_indoor`; a lighting variant keeps that lighting's recordings).
pub fn variant_recordings(file_list: &[String], variant: Variant) -> Vec<String> {
    file_list
        .iter()
        .filter(|n| variant.keeps(n))
        .cloned()
        .collect()
}
