//! What a researcher takes away from a run: `coordinator report` turns the
//! store's job records into Markdown, JSON and CSV reports and plots, during a
//! run (partial, and saying so) and after it.
//!
//! Everything but [`cmd`] is pure: it works on plain [`JobRecord`]s and an
//! [`ExperimentRecord`] (read by [`from_store`], the store's read-only
//! readers), so it is tested without a database.

pub mod aggregate;
pub mod cmd;
pub mod compare;
pub mod csv;
pub mod early_stop;
pub mod json;
pub mod markdown;
pub mod markdown_sweep;
pub mod plots;
pub mod plots_sweep;
pub mod published;
pub mod silent;

pub use crate::store::read_only as from_store;
pub use crate::store::records as model;
pub use aggregate::{Report, build_report};
pub use csv::render_csv;
pub use json::render_json;
pub use markdown::render_markdown;
pub use model::{ExperimentRecord, JobRecord};
pub use plots::write_plots;
