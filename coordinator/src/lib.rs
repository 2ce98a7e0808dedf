//! The spikecv coordinator: holds experiments, hands out cross-validation jobs
//! to workers over gRPC, survives crashes and aggregates the results.

pub mod auth;
pub mod call_limits;
pub mod checkpoints;
pub mod cli;
pub mod commands;
pub mod client_args;
pub mod control_cmd;
pub mod dashboard;
pub mod data_import;
pub mod eta;
pub mod export;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod plan_cmd;
pub mod report;
pub mod scheduler;
pub mod serve_cmd;
pub mod server;
pub mod service;
pub mod state_lock;
pub mod states;
pub mod status_cache;
pub mod status_cmd;
pub mod store;
pub mod submit_cmd;
pub mod web;
