//! Shared pieces of spikecv, used by both the coordinator and the worker.
//!
//! Nothing here links libtorch: the coordinator depends on this crate and must
//! run on a head node without a GPU stack.

pub mod aedat;
pub mod config;
pub mod cv;
pub mod datakind;
pub mod dataset;
pub mod events;
pub mod exit;
pub mod frames;
pub mod gesture;
pub mod job;
pub mod logging;
pub mod mt19937;
pub mod names;
pub mod network;
pub mod network_yaml;
pub mod npy;
pub mod paired;
pub mod plan;
pub mod proto;
pub mod prune;
pub mod render;
pub mod slicing;
pub mod special;
pub mod stats;
pub mod sweep;
pub mod synth;
pub mod synth_gesture;
pub mod tags;
