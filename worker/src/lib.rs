//! The spikecv worker: trains the STBP spiking CNN with libtorch on its GPU
//! slots (or the CPU) and reports to a coordinator.

pub mod allocator;
pub mod autograd;
pub mod cache;
pub mod checkpoint;
pub mod cli;
pub mod cuda_host;
pub mod determinism;
pub mod devices;
pub mod host;
mod host_tensor;
pub mod join;
pub mod lif;
pub mod loader;
pub mod manifest;
pub mod model;
pub mod op_count;
pub mod optim;
pub mod reproduce;
pub mod sample;
pub mod settings;
pub mod slot_child;
pub mod tensorboard;
pub mod train;
pub mod trainer;
pub mod upload;
pub mod weights;
