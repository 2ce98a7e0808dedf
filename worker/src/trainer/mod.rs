//! Training scripts (issue 37; docs/trainers.md is the contract): a worker
//! runs the scripts it was started with ([`registry`]), and a job whose
//! experiment names one runs through its script instead of the native
//! engine, under the same cross-validation, leases, checkpoints and reports.
//!
//! An attempt: [`prepare`] (samples listed, frames exported by [`frames`],
//! the downloaded checkpoint unwrapped by [`wrap`], the job file of
//! [`jobfile`] written), then [`runner`] starts the script ([`process`]),
//! follows its events file ([`tail`]), checks each line ([`events`]), keeps
//! the epochs and the protocol's selection ([`history`]), wraps each
//! checkpoint for upload and ends with a
//! [`ChildOutcome`](crate::slot_child::wire::ChildOutcome) as a slot
//! process does.

mod declared;
pub mod events;
pub mod figures;
pub mod frames;
pub mod history;
pub mod jobfile;
pub mod prepare;
pub mod process;
pub mod registry;
pub mod replay;
pub mod runner;
pub mod tail;
pub mod wrap;

pub use prepare::ScriptJob;
pub use registry::{Registry, Trainer, TrainerSettings};
pub use runner::run;
