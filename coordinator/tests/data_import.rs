//! `coordinator data import` end to end: a synthetic download scattered over
//! nested folders becomes a root; missing, doubled and unexpected files are named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use spikecv_common::dataset::sl_animals::{
    CLASS_DEFS, CLASS_NAMES, read_class_names, read_file_list,
};
use spikecv_common::dataset::synth::recording_names;

use cli_support::*;

fn fingerprint(root: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["data", "inspect", s(root), "--json"])).unwrap();
    json["fingerprint"].as_str().unwrap().to_string()
}

/// A synthetic set laid out as a download might be: recordings under
/// `download/a/b/`, tags under `download/c/` (every third as `.CSV`), the class
/// definitions under `download/docs/`, an unrelated file, and a folder link
/// `a/b/loop -> a` that makes a loop. Returns the download folder and the
/// fingerprint of the set as generated.
fn scattered(tmp: &Path) -> (PathBuf, String) {
    let generated = tmp.join("generated");
    ok(&["data", "synth", "--out", s(&generated), "--seed", "3"]);
    let fp = fingerprint(&generated);
    let dl = tmp.join("download");
    let (recs, tags, docs) = (dl.join("a/b"), dl.join("c"), dl.join("docs"));
    for d in [&recs, &tags, &docs] {
        std::fs::create_dir_all(d).unwrap();
    }
    for (i, name) in recording_names().iter().enumerate() {
        std::fs::rename(
            generated.join(format!("recordings/{name}.aedat")),
            recs.join(format!("{name}.aedat")),
        )
        .unwrap();
        let ext = if i % 3 == 0 { "CSV" } else { "csv" };
        std::fs::rename(
            generated.join(format!("tags/{name}.csv")),
            tags.join(format!("{name}.{ext}")),
        )
        .unwrap();
    }
    std::fs::rename(generated.join(CLASS_DEFS), docs.join(CLASS_DEFS)).unwrap();
    std::fs::write(dl.join("README.txt"), "SL-Animals-DVS\n").unwrap();
    std::os::unix::fs::symlink(dl.join("a"), recs.join("loop")).unwrap();
    (dl, fp)
}

#[test]
fn a_scattered_download_becomes_the_root_it_was_generated_as() {
    let tmp = tempfile::tempdir().unwrap();
    let (dl, fp) = scattered(tmp.path());
    let root = tmp.path().join("root");
    let text = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(
        text.contains("imported 59 recordings") && text.contains("119 files hard-linked, 0 copied"),
        "{text}"
    );
    assert!(
        text.contains("docs/SL-Animals-DVS_gestures_definitions.csv"),
        "{text}"
    );
    assert!(!text.contains("unexpected"), "{text}");
    // It ends with what `data inspect` says, and the root is the generated one.
    assert!(
        text.contains("recordings:  59 (42 without _indoor)"),
        "{text}"
    );
    assert!(text.contains("samples:     1121"), "{text}");
    assert!(text.contains("problems:    none"), "{text}");
    assert!(text.contains(&format!("fingerprint: {fp}")), "{text}");
    assert_eq!(fingerprint(&root), fp);
    // `.CSV` tags land as `.csv`; files are hard links of the download's.
    assert!(root.join("tags/user00_indoor.csv").is_file());
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&root.join("recordings/user30_imse.aedat")),
        ino(&dl.join("a/b/user30_imse.aedat"))
    );

    // Again into the same root: nothing to do, nothing refused.
    let again = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(
        again.contains("0 files hard-linked, 0 copied, 119 already there"),
        "{again}"
    );

    // --copy gives separate files with the same content.
    let copied = tmp.path().join("copied");
    let text = ok(&["data", "import", s(&dl), "--out", s(&copied), "--copy"]);
    assert!(text.contains("0 files hard-linked, 119 copied"), "{text}");
    assert_ne!(
        ino(&copied.join("recordings/user30_imse.aedat")),
        ino(&dl.join("a/b/user30_imse.aedat"))
    );
    assert_eq!(fingerprint(&copied), fp);
}

#[test]
fn one_missing_and_one_doubled_fail_naming_both_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dl, _) = scattered(tmp.path());
    let aside = tmp.path().join("user05_indoor.aedat");
    std::fs::rename(dl.join("a/b/user05_indoor.aedat"), &aside).unwrap();
    let extra = dl.join("extra/deep");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::copy(
        dl.join("a/b/user30_imse.aedat"),
        extra.join("user30_imse.aedat"),
    )
    .unwrap();
    let root = tmp.path().join("root");

    let err = fails(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(err.contains("missing (1): user05_indoor.aedat"), "{err}");
    assert!(err.contains("doubled: user30_imse.aedat at"), "{err}");
    assert!(
        err.contains(s(&dl.join("a/b/user30_imse.aedat")))
            && err.contains(s(&extra.join("user30_imse.aedat"))),
        "{err}"
    );
    assert!(err.contains("nothing written"), "{err}");
    assert!(!root.exists());
    // A double fails even with --allow-missing.
    let err = fails(&[
        "data",
        "import",
        s(&dl),
        "--out",
        s(&root),
        "--allow-missing",
    ]);
    assert!(err.contains("doubled: user30_imse.aedat"), "{err}");
    assert!(!root.exists());

    // Without the double, --allow-missing writes a root without user05_indoor.
    std::fs::remove_file(extra.join("user30_imse.aedat")).unwrap();
    let text = ok(&[
        "data",
        "import",
        s(&dl),
        "--out",
        s(&root),
        "--allow-missing",
    ]);
    assert!(
        text.contains("left out (--allow-missing): user05_indoor; missing: user05_indoor.aedat"),
        "{text}"
    );
    assert!(
        text.contains("recordings:  58 (42 without _indoor)"),
        "{text}"
    );
    assert!(text.contains("samples:     1102"), "{text}");
    let list = read_file_list(&root.join("filelist.txt")).unwrap();
    assert_eq!(list.len(), 58);
    assert!(!list.iter().any(|n| n == "user05_indoor"));
    assert!(!root.join("tags/user05_indoor.csv").exists());

    // With the recording back, importing again completes that root.
    std::fs::rename(&aside, dl.join("a/b/user05_indoor.aedat")).unwrap();
    let text = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(
        text.contains("2 files hard-linked, 0 copied, 117 already there"),
        "{text}"
    );
    assert!(
        text.contains("recordings:  59 (42 without _indoor)"),
        "{text}"
    );
    assert_eq!(
        read_file_list(&root.join("filelist.txt")).unwrap(),
        recording_names()
    );
}

#[test]
fn unexpected_files_are_reported_and_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (dl, _) = scattered(tmp.path());
    // user04 is not in the file list; names are matched exactly (case too).
    std::fs::copy(
        dl.join("a/b/user00_indoor.aedat"),
        dl.join("a/user04_indoor.aedat"),
    )
    .unwrap();
    std::fs::write(
        dl.join("c/USER01_indoor.csv"),
        "class,startTime_ev,endTime_ev\n",
    )
    .unwrap();
    std::fs::write(dl.join("notes.csv"), "a,b\n").unwrap();
    // Without the download's class definitions, the built-in ones are written.
    std::fs::remove_file(dl.join("docs").join(CLASS_DEFS)).unwrap();
    let root = tmp.path().join("root");
    let text = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(text.contains("class definitions: built-in"), "{text}");
    assert!(text.contains("118 files hard-linked, 0 copied"), "{text}");
    assert_eq!(
        read_class_names(&root.join(CLASS_DEFS)).unwrap(),
        CLASS_NAMES.map(String::from)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("unexpected"))
        .unwrap_or_else(|| panic!("no unexpected line in {text}"));
    for f in ["a/user04_indoor.aedat", "c/USER01_indoor.csv", "notes.csv"] {
        assert!(line.contains(s(&dl.join(f))), "{f} not in {line}");
    }
    assert!(text.contains("recordings:  59"), "{text}");
    assert!(!root.join("recordings/user04_indoor.aedat").exists());

    // A failing import names the unexpected files as well.
    std::fs::remove_file(dl.join("c/user02_indoor.csv")).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r2"))]);
    assert!(err.contains("missing (1): user02_indoor.csv"), "{err}");
    assert!(err.contains(s(&dl.join("notes.csv"))), "{err}");
}

#[test]
fn an_out_inside_the_download_or_holding_another_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dl, _) = scattered(tmp.path());

    let inside = dl.join("sub/root");
    let err = fails(&["data", "import", s(&dl), "--out", s(&inside)]);
    assert!(err.contains("lies inside"), "{err}");
    assert!(!dl.join("sub").exists());

    let other = tmp.path().join("other");
    synth_small(&other, 2, 9);
    let before = std::fs::read(other.join("filelist.txt")).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&other)]);
    assert!(
        err.contains("already holds a different data set root"),
        "{err}"
    );
    assert!(err.contains("recordings/user00_indoor.aedat"), "{err}");
    assert_eq!(std::fs::read(other.join("filelist.txt")).unwrap(), before);
    assert!(!other.join("recordings/user01_indoor.aedat").exists());

    // Two class definitions that disagree.
    let defs = std::fs::read_to_string(dl.join("docs").join(CLASS_DEFS)).unwrap();
    std::fs::write(dl.join(CLASS_DEFS), defs.replace("zebra", "horse")).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r"))]);
    assert!(err.contains("class definitions disagree"), "{err}");

    let err = fails(&[
        "data",
        "import",
        s(&dl.join("README.txt")),
        "--out",
        s(&tmp.path().join("r")),
    ]);
    assert!(err.contains("no such folder"), "{err}");
}

#[test]
fn links_that_leave_the_download_are_refused_naming_link_and_target() {
    let tmp = tempfile::tempdir().unwrap();
    let (dl, _) = scattered(tmp.path());
    // A file link and a folder link out of the download (the folder loop
    // `a/b/loop -> a` inside it stays fine).
    let outside = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "not data\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), dl.join("c/notes.txt")).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r1"))]);
    assert!(
        err.contains(s(&dl.join("c/notes.txt"))) && err.contains("secret.txt"),
        "{err}"
    );
    assert!(err.contains("outside"), "{err}");
    assert!(!tmp.path().join("r1").join("filelist.txt").exists());
    std::fs::remove_file(dl.join("c/notes.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dl.join("docs/more")).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r2"))]);
    assert!(
        err.contains(s(&dl.join("docs/more"))) && err.contains("elsewhere"),
        "{err}"
    );
    // Without them the import goes through.
    std::fs::remove_file(dl.join("docs/more")).unwrap();
    let text = ok(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r3"))]);
    assert!(text.contains("imported 59 recordings"), "{text}");
}
