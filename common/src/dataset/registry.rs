//! The data set kinds spikecv knows, in one list ([`KINDS`]), and what needs
//! the list: the default kind, parsing a kind's or a variant's name and
//! telling a root's kind by its files. A new kind is its own module and one line here.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dataset::dvs_gesture::kind::DVS_GESTURE;
use crate::dataset::error::UnknownName;
use crate::dataset::kind::DataKind;
use crate::dataset::sl_animals::kind::SL_ANIMALS;
use crate::dataset::variant::Variant;

/// Every kind, the default first.
pub const KINDS: [DataKind; 2] = [SL_ANIMALS, DVS_GESTURE];

impl DataKind {
    /// Every registered kind, the default first.
    pub fn all() -> &'static [DataKind] {
        &KINDS
    }

    /// The kind that imports the download `dir`, with the folder holding its
    /// files: the first kind that marks `dir` as its own, else the default.
    pub fn importing(dir: &Path) -> (DataKind, PathBuf) {
        let default = DataKind::default();
        KINDS
            .into_iter()
            .filter(|k| *k != default)
            .find_map(|k| Some((k, k.import_source(dir)?)))
            .unwrap_or((default, dir.to_path_buf()))
    }

    /// The first kind whose files `root` holds, if any.
    pub fn detect(root: &Path) -> Option<DataKind> {
        KINDS.into_iter().find(|k| k.holds(root))
    }
}

impl Default for DataKind {
    fn default() -> Self {
        KINDS[0]
    }
}

impl FromStr for DataKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KINDS
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                key: "data.kind",
                name: s.to_owned(),
                offered: KINDS.map(DataKind::as_str).join(", "),
            })
    }
}

impl Serialize for DataKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DataKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| unknown_variant(&name, &KINDS.map(DataKind::as_str)))
    }
}

/// Every kind's variants, each name once, in rank order (`whole` first).
fn all_variants() -> Vec<Variant> {
    let mut all: Vec<Variant> = KINDS.iter().flat_map(|k| k.variants()).copied().collect();
    all.sort();
    all.dedup();
    all
}

impl FromStr for Variant {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = all_variants();
        all.iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                key: "variant",
                name: s.to_owned(),
                offered: all
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| {
            let names: Vec<&str> = all_variants().iter().map(|v| v.as_str()).collect();
            unknown_variant(&name, &names)
        })
    }
}

/// serde's own wording for an unknown enum variant, so a bad name in a
/// config reads as it did when kinds and variants were enums.
fn unknown_variant<E: serde::de::Error>(name: &str, names: &[&str]) -> E {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let expected = match names.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        more => format!("one of {}", more.join(", ")),
    };
    E::custom(format!("unknown variant `{name}`, expected {expected}"))
}
