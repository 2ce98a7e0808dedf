//! The gRPC contract (`proto/spikecv/v1/spikecv.proto`), generated at build time,
//! plus conversions to the crate's own types and a client builder.
//!
//! Generated types stay at the edge: the coordinator and worker convert them
//! into their own types (`to_proto` / `from_proto`) before any logic sees them.

mod generated {
    #![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
    tonic::include_proto!("spikecv.v1");
}
pub use generated::*;

pub mod client;
mod convert;
pub mod enrol;
pub mod limits;
mod manifest;
pub mod trainer;
pub use convert::ProtoError;

/// The protocol version this build speaks; a coordinator refuses other versions.
pub const PROTOCOL_VERSION: u32 = 2;
