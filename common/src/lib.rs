//! Shared pieces of spikecv, used by both the coordinator and the worker.
//!
//! Nothing here links libtorch: the coordinator depends on this crate and must
//! run on a head node without a GPU stack.
//!
//! The crate is layered; each layer imports only those below it (see
//! `docs/architecture.md`):
//!
//! - [`events`]: event files (AEDAT readers, tags, slicing, frames, `.npy`,
//!   rendering);
//! - [`dataset`]: data set roots and their kinds (SL-Animals-DVS, DVS128
//!   Gesture), synthetic data sets;
//! - [`experiment`]: the experiment file, its networks and sweeps, folds,
//!   plans and job records;
//! - [`stats`] beside them, [`proto`] (the gRPC bindings) apart, and the
//!   small leaves [`names`], [`exit`] and [`logging`].

pub mod dataset;
pub mod events;
pub mod exit;
pub mod experiment;
pub mod logging;
pub mod names;
pub mod proto;
pub mod stats;
