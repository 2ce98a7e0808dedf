//! The `coordinator` binary's commands: each parses its flags and drives the
//! domain (scheduler, store, service, report, export, web); nothing outside
//! this folder imports a command.

pub mod data;
pub mod frames;
