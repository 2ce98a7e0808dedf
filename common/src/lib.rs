//! Shared pieces of spikecv, used by both the coordinator and the worker.
//!
//! Nothing here links libtorch: the coordinator depends on this crate and must
//! run on a head node without a GPU stack.

pub mod config;
pub mod job;
pub mod proto;
