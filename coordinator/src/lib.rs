//! The spikecv coordinator: holds experiments, hands out cross-validation jobs
//! to workers over gRPC, survives crashes and aggregates the results.

pub mod auth;
pub mod call_limits;
pub mod cert_names;
pub mod checkpoints;
pub mod commands;
pub mod conn_limits;
pub mod constant_time;
pub mod credentials;
pub mod dashboard;
pub mod eta;
pub mod export;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod state_lock;
pub mod states;
pub mod status_cache;
pub mod store;
pub mod tls;
pub mod web;
