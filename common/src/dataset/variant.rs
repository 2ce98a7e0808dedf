//! Which of a data set's recordings a job uses ([`Variant`]): each kind
//! offers its own, `whole` for every kind.

use std::fmt;

use serde::Serialize;

/// Which recordings of its data set a job uses: one of the
/// [`crate::dataset::kind::DataSetKind::variants`] its kind offers, [`Variant::WHOLE`] for every kind.
/// Each kind defines its own as constants in its module; shown, parsed and
/// serialised by name (parsing in [`crate::dataset::registry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    /// Where reports list it among its kind's variants (`whole` is 0).
    rank: u8,
    /// The name used in files, flags and reports.
    name: &'static str,
    /// What `data inspect` says of the recordings it keeps, if it counts them
    /// (`without _indoor`).
    note: Option<&'static str>,
}

impl Variant {
    /// Every recording of the data set, offered by every kind.
    pub const WHOLE: Variant = Variant::new(0, "whole", None);

    /// A variant called `name`, listed at `rank` (`whole` being 0), with the
    /// `note` `data inspect` gives its recording count.
    pub const fn new(rank: u8, name: &'static str, note: Option<&'static str>) -> Self {
        Variant { rank, name, note }
    }

    /// The name used in files, flags and reports. Which recordings a variant
    /// keeps is its data set kind's rule ([`crate::dataset::kind::DataSetKind::keeps`]).
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// Where reports list it among its kind's variants (`whole` is 0).
    pub fn rank(self) -> u8 {
        self.rank
    }

    /// What `data inspect` says of the recordings it keeps, if it counts them.
    pub fn note(self) -> Option<&'static str> {
        self.note
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
