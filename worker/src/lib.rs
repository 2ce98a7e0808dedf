//! The spikecv worker: trains the STBP spiking CNN with libtorch on its GPU
//! slots (or the CPU) and reports to a coordinator.

pub mod cli;
pub mod devices;
pub mod join;
