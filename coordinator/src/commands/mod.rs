//! The `coordinator` binary's commands: each parses its flags and drives the
//! domain (scheduler, store, service, report, export, web); nothing outside
//! this folder imports a command. [`cli`] holds the command tree and runs
//! the command parsed.

pub mod cli;
pub mod client_args;
pub mod control;
pub mod data;
pub mod data_error;
pub mod export;
pub mod frames;
pub mod plan;
pub mod report;
pub mod samples;
pub mod serve;
pub mod status;
pub mod submit;
pub mod workers;
