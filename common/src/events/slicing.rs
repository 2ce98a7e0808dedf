//! Slicing a recording into its 19 samples (`events[start_i .. end_i]` per tag
//! row) and the sample names used by sliced files and the command line.

use crate::events::Event;
use crate::events::tags::Tag;

/// The name of sample `class` of `recording`: `<recording>_<NN>`, NN two digits.
pub fn sample_name(recording: &str, class: usize) -> String {
    format!("{recording}_{class:02}")
}

/// Splits a sample name `<recording>_<NN>` into the recording and class index.
pub fn parse_sample_name(name: &str) -> Option<(&str, usize)> {
    let (rec, nn) = name.rsplit_once('_')?;
    if nn.len() != 2 || !nn.bytes().all(|b| b.is_ascii_digit()) || rec.is_empty() {
        return None;
    }
    Some((rec, nn.parse().ok()?))
}

/// Cuts a recording's events into one sample per tag row. The tags must have
/// been checked against `events.len()` ([`crate::events::tags::check_range`]); rows
/// beyond the events are clamped rather than panicking.
pub fn slice(events: &[Event], tags: &[Tag]) -> Vec<Vec<Event>> {
    tags.iter().map(|t| slice_one(events, t)).collect()
}

/// One sample of a recording (see [`slice`]).
pub fn slice_one(events: &[Event], tag: &Tag) -> Vec<Event> {
    sample(events, tag).to_vec()
}

/// The samples as borrowed sub-slices of the recording's events (no copy).
pub fn slice_borrowed<'a>(events: &'a [Event], tags: &[Tag]) -> Vec<&'a [Event]> {
    tags.iter().map(|t| sample(events, t)).collect()
}

/// The events of `tag`'s row, its bounds clamped to the recording.
fn sample<'a>(events: &'a [Event], tag: &Tag) -> &'a [Event] {
    let end = tag.end.min(events.len());
    &events[tag.start.min(end)..end]
}
