//! The published figures users compare a run against: each kind gives its own
//! table ([`crate::dataset::kind::DataSetKind::published`]), whose columns say
//! which of a run's variants stands in them and whether they hold figures on
//! the data set's own split or k-fold ones. Reports lay any table out the same
//! way; the JSON report holds its rows as a plain list.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::dataset::variant::Variant;

/// A mean ± std in percent, as published.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PublishedValue {
    /// Mean accuracy in percent.
    pub mean_percent: f64,
    /// Standard deviation in percentage points, as the source gives it;
    /// `None` when it gives none.
    pub std_percent: Option<f64>,
}

/// A mean ± std figure (a `const` shorthand for the kinds' tables).
pub const fn figure(mean_percent: f64, std_percent: f64) -> Option<PublishedValue> {
    Some(PublishedValue {
        mean_percent,
        std_percent: Some(std_percent),
    })
}

/// One column of figures, and what of a run stands beside them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishedColumn {
    /// The figures' field in the JSON report's rows; `None` when no source
    /// gives figures of this kind (the column is the run's alone).
    pub key: Option<&'static str>,
    /// The column's Markdown header.
    pub header: &'static str,
    /// The run's variant shown in it.
    pub variant: Variant,
    /// Whether it holds figures on the data set's own split (a run's
    /// `official` protocol) rather than k-fold ones.
    pub own_split: bool,
}

/// One published row.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedFigure {
    /// Method and source.
    pub method: &'static str,
    /// Its figure in each column of the table, in column order.
    pub values: &'static [Option<PublishedValue>],
    /// Classes the figure is over, where the table has a classes column
    /// (`None`: the source does not say).
    pub classes: Option<u32>,
    /// How the figure was obtained.
    pub protocol: &'static str,
    /// Whether the figure selects on the test set (best test accuracy over
    /// epochs); `None` when the source does not say.
    pub optimistic: Option<bool>,
}

/// The published figures of one data set kind.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTable {
    /// The report section's heading.
    pub heading: &'static str,
    /// The sentence under the heading: what the figures are.
    pub note: &'static str,
    /// The figure columns, between method and protocol.
    pub columns: &'static [PublishedColumn],
    /// Whether a classes column follows them.
    pub classes_column: bool,
    /// The rows.
    pub figures: &'static [PublishedFigure],
}

/// A row as the JSON report holds it: method, one field per keyed column,
/// classes where the table has them, protocol, optimistic.
struct Row<'a>(&'a PublishedTable, &'a PublishedFigure);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Row(table, f) = self;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("method", f.method)?;
        for (column, value) in table.columns.iter().zip(f.values) {
            if let Some(key) = column.key {
                map.serialize_entry(key, value)?;
            }
        }
        if table.classes_column {
            map.serialize_entry("classes", &f.classes)?;
        }
        map.serialize_entry("protocol", f.protocol)?;
        map.serialize_entry("optimistic", &f.optimistic)?;
        map.end()
    }
}

impl Serialize for PublishedTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.figures.len()))?;
        for f in self.figures {
            seq.serialize_element(&Row(self, f))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::dataset::dvs_gesture::kind::DVS_GESTURE;
    use crate::dataset::sl_animals::kind::SL_ANIMALS;

    #[test]
    fn each_data_set_has_its_own_table() {
        let sl = SL_ANIMALS.published();
        assert_eq!(sl.figures.len(), 6);
        assert!(
            sl.figures
                .iter()
                .all(|f| f.values.len() == sl.columns.len())
        );
        let g = DVS_GESTURE.published();
        assert!(g.figures.iter().all(|f| f.values.len() == g.columns.len()));
        assert!(g.figures.iter().all(|r| r.values[0].is_some()));
        assert!(g.figures.iter().any(|r| r.method.starts_with("SLAYER")));
        assert!(g.figures.iter().any(|r| r.method.starts_with("DECOLLE")));
        assert!(
            g.figures
                .iter()
                .all(|r| r.protocol.contains("users 1-23 train"))
        );
    }

    #[test]
    fn both_tables_serialise_as_plain_lists_of_rows() {
        let sl = serde_json::to_value(SL_ANIMALS.published()).unwrap_or_default();
        assert_eq!(sl[0]["whole"]["mean_percent"], 56.2);
        assert_eq!(sl[0]["whole"]["std_percent"], 1.52);
        assert_eq!(sl[0]["optimistic"], true);
        assert_eq!(sl[3]["reduced"], serde_json::Value::Null);
        assert!(sl[0].get("classes").is_none());
        let g = serde_json::to_value(DVS_GESTURE.published()).unwrap_or_default();
        assert_eq!(g[1]["official_split"]["mean_percent"], 93.64);
        assert_eq!(g[1]["classes"], 11);
        assert_eq!(g[1]["optimistic"], serde_json::Value::Null);
        assert!(g[1].get("whole").is_none());
    }
}
