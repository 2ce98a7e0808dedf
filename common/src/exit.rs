//! Exit codes both binaries use, so a service manager can tell a refusal that
//! a restart will not cure from a crash that it may.

/// Success.
pub const OK: u8 = 0;
/// A failure a restart may cure (I/O, a lost connection, a crash).
pub const FAILURE: u8 = 1;
/// Refused for good: an invalid experiment or token file, another coordinator
/// on the same state, a worker whose data set, protocol version or token the
/// coordinator rejects. systemd units list it in `RestartPreventExitStatus=`,
/// and the Slurm scripts stop instead of restarting.
pub const REFUSED: u8 = 3;
