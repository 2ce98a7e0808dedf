//! `coordinator export mlflow --state DB --tracking-uri URI [--experiment ID]
//! [--mlflow-experiment NAME]`: writes an experiment into an MLflow tracking
//! server through its REST API, one run per job under a parent run holding the
//! report's aggregates (the same [`crate::report::build_report`] figures as
//! `report.json`). Exporting again updates the same runs.
//!
//! [`rest`] talks HTTP, [`payload`] says what each run holds, [`held`] what
//! the coordinator has of a job's files, [`sync`] brings one run up to date
//! and [`mlflow`] finds the experiment and the runs of an earlier export.

pub mod held;
pub mod mlflow;
pub mod payload;
pub mod rest;
pub mod sync;
