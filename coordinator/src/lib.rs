//! The spikecv coordinator: holds experiments, hands out cross-validation jobs
//! to workers over gRPC, survives crashes and aggregates the results.

pub mod cli;
pub mod server;
