//! Helpers of the tests that run the real `coordinator` binary: run it, insist
//! on success or failure, and make small synthetic roots.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `coordinator ARGS` (warnings only on stderr).
pub fn coordinator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = coordinator(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = coordinator(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `coordinator data synth` of `recordings` tiny recordings with `seed` into `root`.
pub fn synth_small(root: &Path, recordings: usize, seed: u64) {
    let (n, seed) = (recordings.to_string(), seed.to_string());
    ok(&[
        "data",
        "synth",
        "--out",
        s(root),
        "--recordings",
        &n,
        "--seed",
        &seed,
    ]);
}
