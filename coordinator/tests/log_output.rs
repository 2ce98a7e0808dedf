//! Log lines are plain text off a terminal, coloured on one, and plain again on
//! a terminal when `NO_COLOR` is set. The real binary logs a warning
//! (`coordinator plan` on a data root without recordings); a pseudo-terminal
//! comes from util-linux's `script`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

const WARNING: &str = "data set incomplete";

/// An experiment whose data root has a file list but no recordings.
fn experiment(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let names: Vec<String> = (0..4)
        .map(|i| format!("user{i:02}_indoor"))
        .chain((25..29).map(|i| format!("user{i:02}_imse")))
        .collect();
    std::fs::write(data.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    let exp = dir.join("exp.toml");
    std::fs::write(&exp, "[data]\nroot = \"data\"\n").unwrap();
    exp
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("plan")
        .arg("--experiment")
        .arg(&exp)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(WARNING), "the warning is logged: {err}");
    assert!(!err.contains('\x1b'), "no ANSI codes in a pipe: {err:?}");
}

/// Runs the plan under a pseudo-terminal (stderr on it) and returns what it
/// printed. `script` is in Debian's essential bsdutils, so every machine has it.
fn on_a_terminal(exp: &Path, no_color: Option<&str>) -> String {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("util-linux `script` (Debian's bsdutils) provides the terminal");
    let cmd = format!(
        "{} plan --experiment {} >/dev/null",
        env!("CARGO_BIN_EXE_coordinator"),
        exp.display()
    );
    let mut c = Command::new(script);
    c.args(["-qec", &cmd, "/dev/null"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    match no_color {
        Some(v) => c.env("NO_COLOR", v),
        None => c.env_remove("NO_COLOR"),
    };
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let coloured = on_a_terminal(&exp, None);
    assert!(coloured.contains(WARNING), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(&exp, Some("1"));
    assert!(plain.contains(WARNING), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR=1 wins: {plain:?}");
}
