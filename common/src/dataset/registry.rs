//! The data set kinds spikecv knows, in one list ([`KINDS`]), and what needs
//! the list: the default kind, parsing a kind's name and telling a root's kind
//! by its files. A new kind is its own module and one line here.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dataset::dvs_gesture::kind::DVS_GESTURE;
use crate::dataset::error::UnknownName;
use crate::dataset::kind::DataKind;
use crate::dataset::sl_animals::kind::SL_ANIMALS;

/// Every kind, the default first.
pub const KINDS: [DataKind; 2] = [SL_ANIMALS, DVS_GESTURE];

impl DataKind {
    /// Every registered kind, the default first.
    pub fn all() -> &'static [DataKind] {
        &KINDS
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
        name.parse().map_err(|_| {
            // serde's own wording for an unknown enum variant.
            let names = KINDS.map(|k| format!("`{k}`"));
            let expected = match names.as_slice() {
                [one] => one.clone(),
                [a, b] => format!("{a} or {b}"),
                more => format!("one of {}", more.join(", ")),
            };
            serde::de::Error::custom(format!("unknown variant `{name}`, expected {expected}"))
        })
    }
}
