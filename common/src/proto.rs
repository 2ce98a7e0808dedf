//! The gRPC contract (`proto/spikecv/v1/spikecv.proto`), generated at build time.
//!
//! Generated types stay at the edge: the coordinator and worker convert them
//! into their own types before any logic sees them.

#![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]

tonic::include_proto!("spikecv.v1");

/// The protocol version this build speaks; a coordinator refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;
