//! What a researcher takes away from a run: `coordinator report` turns the
//! store's job records into Markdown, JSON and CSV reports and plots, during a
//! run (partial, and saying so) and after it.
//!
//! Two stages: [`compute`] builds the [`Report`] value from plain
//! [`JobRecord`]s and an [`ExperimentRecord`] (read by [`from_store`], the
//! store's read-only readers) and knows nothing of formats; [`render`] reads
//! that value and writes each format; the published figures come from the
//! data set's kind. `coordinator report` (in the commands) reads the
//! store, computes and renders; everything here is pure, so it is tested
//! without a database.

pub mod compute;
pub mod render;
#[cfg(test)]
mod tests;

pub use crate::store::read_only as from_store;
pub use crate::store::records as model;
pub use compute::report::{Report, build_report};
pub use model::{ExperimentRecord, JobRecord};
pub use render::csv::render_csv;
pub use render::json::render_json;
pub use render::markdown::render_markdown;
pub use render::plots::write_plots;
