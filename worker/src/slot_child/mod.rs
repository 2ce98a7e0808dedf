//! The slot process: `worker join` trains each slot's jobs in a long-lived
//! child process of its own (the hidden `worker slot-child` command), so that
//! what libtorch keeps for a whole process stays with one slot:
//!
//! - the process-wide switches a job asks for (`[training] tf32` and
//!   `deterministic`, cuDNN's autotuner with the latter) are set once, when
//!   the process starts, from the job's config; a job that needs other values
//!   gets a fresh process;
//! - a sticky CUDA error (illegal address, ECC, unspecified launch failure)
//!   poisons only the process it happened in: the process reports it and
//!   exits, and its slot starts a fresh one for the next job;
//! - a crash (an abort or a signal in libtorch or the C++ kernels) ends the
//!   process, not the worker: the parent sees the pipe close, reports the
//!   attempt as a transient failure and starts a fresh process.
//!
//! Each process holds its own frame cache (a share of its device's budget,
//! [`crate::cache::set_share`]) and takes one CUDA stream for all its jobs.
//!
//! The parent (`join`) and the child talk over the child's stdin and stdout
//! in [`wire`] messages, one JSON object a line; the child's logs go to its
//! stderr, which it shares with the parent.

pub mod fault;
pub mod serve;
pub mod wire;

pub use serve::{SlotChildArgs, SlotChildError, serve};
