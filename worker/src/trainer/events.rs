//! The lines a script appends to `$SPIKECV_EVENTS`, parsed and checked
//! against the rules of docs/trainers.md ("What the script says back") and
//! the bounds the coordinator holds reports to: one JSON object per line of
//! `type` `epoch`, `checkpoint` or `result`, no other keys, epochs counting
//! up from `resume_epoch + 1` without gaps, every number finite, losses in
//! `[0, 1e6]`, accuracies in `[0, 1]`, validation figures exactly under
//! `train-val-test`, a test confusion matrix `classes × classes` summing to
//! the test set's size with a trace that gives the test accuracy, nothing
//! after the `result`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;

use super::figures::{MAX_SECONDS, bounded, confusion, figures, fraction, loss};

/// The most characters of a line an error quotes.
pub const QUOTED_CHARS: usize = 200;

/// What the lines are checked against: the job.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The protocol (validation figures exactly under `train-val-test`).
    pub protocol: ProtocolKind,
    /// Epochs the job trains in all.
    pub epochs: u32,
    /// Classes of the data set (a confusion matrix's side).
    pub classes: usize,
    /// Samples of the test set (a confusion matrix's total).
    pub test_samples: usize,
    /// The epochs a resumed checkpoint holds (0 on a fresh start).
    pub resume_epoch: u32,
    /// Where checkpoints must lie (resolved).
    pub checkpoint_dir: PathBuf,
}

/// An `epoch` line: its metrics and its test confusion matrix, if sent.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLine {
    /// The metrics, as the coordinator gets them.
    pub metrics: EpochMetrics,
    /// The test confusion matrix `[true][predicted]`.
    pub confusion: Option<Vec<Vec<u32>>>,
}

/// A `result` line: the selected model.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine {
    /// The selected epoch.
    pub best_epoch: u32,
    /// Its test accuracy.
    pub test_accuracy: f64,
    /// Its test loss.
    pub test_loss: f64,
    /// Its validation accuracy (`train-val-test`).
    pub val_accuracy: Option<f64>,
    /// Its validation loss (`train-val-test`).
    pub val_loss: Option<f64>,
    /// Its test confusion matrix.
    pub confusion: Vec<Vec<u32>>,
}

/// One checked line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An epoch ended.
    Epoch(EpochLine),
    /// A checkpoint of the state after `epoch` epochs is at `path` (resolved).
    Checkpoint {
        /// Epochs it holds.
        epoch: u32,
        /// The file.
        path: PathBuf,
    },
    /// The selected model.
    Result(ResultLine),
}

/// A line that breaks the contract: which, why, and the line (truncated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events line {number}: {why}: {quoted}")]
pub struct LineError {
    /// The line's number (1-based).
    pub number: usize,
    /// What is wrong.
    pub why: String,
    /// The line, quoted and cut to [`QUOTED_CHARS`] characters.
    pub quoted: String,
}

/// The line quoted for an error, cut to [`QUOTED_CHARS`] characters.
pub fn quote(text: &str) -> String {
    let mut cut: String = text.chars().take(QUOTED_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEpoch {
    epoch: u32,
    train_loss: f64,
    train_accuracy: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    test_loss: Option<f64>,
    test_accuracy: Option<f64>,
    confusion: Option<Vec<Vec<u32>>>,
    epoch_seconds: Option<f64>,
    samples_per_second: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    epoch: u32,
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResult {
    best_epoch: u32,
    test_accuracy: f64,
    test_loss: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    confusion: Vec<Vec<u32>>,
}

/// Checks the lines of one run in order.
#[derive(Debug)]
pub struct Validator {
    rules: Rules,
    /// The last epoch done (`resume_epoch` before the first line).
    done: u32,
    lines: usize,
    result_seen: bool,
}

type Checked<T> = Result<T, String>;

impl Validator {
    /// A validator for a run of the job `rules` describe.
    pub fn new(rules: Rules) -> Validator {
        Validator {
            done: rules.resume_epoch,
            rules,
            lines: 0,
            result_seen: false,
        }
    }

    /// The last epoch done: the last reported, else the resumed checkpoint's.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// Checks the next line (without its newline); `measured` is the time
    /// since the previous line (or the start), an epoch's time when the line
    /// gives none.
    pub fn check(&mut self, text: &str, measured: f64) -> Result<Line, LineError> {
        self.lines += 1;
        let line = self.parse(text, measured).map_err(|why| LineError {
            number: self.lines,
            why,
            quoted: quote(text),
        })?;
        match &line {
            Line::Epoch(e) => self.done = e.metrics.epoch,
            Line::Result(_) => self.result_seen = true,
            Line::Checkpoint { .. } => {}
        }
        Ok(line)
    }

    fn parse(&self, text: &str, measured: f64) -> Checked<Line> {
        if self.result_seen {
            return Err("a line after the result".into());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err("not a JSON object".into());
        };
        let kind = match map.remove("type") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("type must be a string, got {other}")),
            None => return Err("no type".into()),
        };
        match kind.as_str() {
            "epoch" => self.epoch(fields(map)?, measured).map(Line::Epoch),
            "checkpoint" => self.checkpoint(fields(map)?),
            "result" => self.result(fields(map)?).map(Line::Result),
            other => Err(format!(
                "unknown type {:?} (epoch, checkpoint or result)",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    fn epoch(&self, r: RawEpoch, measured: f64) -> Checked<EpochLine> {
        let expected = self.done + 1;
        if r.epoch != expected {
            return Err(format!(
                "epoch {} where epoch {expected} comes next (epochs count up from {} without gaps)",
                r.epoch,
                self.rules.resume_epoch + 1
            ));
        }
        if r.epoch > self.rules.epochs {
            return Err(format!(
                "epoch {} is beyond the job's {} epochs",
                r.epoch, self.rules.epochs
            ));
        }
        loss("train_loss", r.train_loss)?;
        fraction("train_accuracy", r.train_accuracy)?;
        figures(
            self.rules.protocol,
            r.val_loss,
            r.val_accuracy,
            r.test_loss,
            r.test_accuracy,
        )?;
        if let Some(c) = &r.confusion {
            let accuracy = r
                .test_accuracy
                .ok_or("confusion needs the epoch's test_loss and test_accuracy".to_owned())?;
            confusion(c, self.rules.classes, self.rules.test_samples, accuracy)?;
        }
        let epoch_seconds = r.epoch_seconds.unwrap_or(measured.max(0.0));
        bounded("epoch_seconds", epoch_seconds, MAX_SECONDS)?;
        let samples_per_second = r.samples_per_second.unwrap_or(0.0);
        bounded("samples_per_second", samples_per_second, MAX_SECONDS)?;
        Ok(EpochLine {
            metrics: EpochMetrics {
                epoch: r.epoch,
                train_loss: r.train_loss,
                train_accuracy: r.train_accuracy,
                val_loss: r.val_loss,
                val_accuracy: r.val_accuracy,
                test_loss: r.test_loss,
                test_accuracy: r.test_accuracy,
                epoch_seconds,
                samples_per_second,
                firing_rates: Vec::new(),
            },
            confusion: r.confusion,
        })
    }

    fn checkpoint(&self, r: RawCheckpoint) -> Checked<Line> {
        if self.done == 0 {
            return Err("a checkpoint before any epoch".into());
        }
        if r.epoch != self.done {
            return Err(format!(
                "checkpoint of epoch {}; the last epoch done is {}",
                r.epoch, self.done
            ));
        }
        let given = Path::new(&r.path);
        if !given.is_absolute() {
            return Err(format!("path {:?} is not absolute", r.path));
        }
        let path = std::fs::canonicalize(given)
            .map_err(|e| format!("checkpoint file {}: {e}", given.display()))?;
        if !path.starts_with(&self.rules.checkpoint_dir) || path == self.rules.checkpoint_dir {
            return Err(format!(
                "checkpoint file {} is not under checkpoint_dir {}",
                path.display(),
                self.rules.checkpoint_dir.display()
            ));
        }
        if !path.is_file() {
            return Err(format!("checkpoint {} is not a file", path.display()));
        }
        Ok(Line::Checkpoint {
            epoch: r.epoch,
            path,
        })
    }

    fn result(&self, r: RawResult) -> Checked<ResultLine> {
        if !(1..=self.done).contains(&r.best_epoch) {
            return Err(format!(
                "best_epoch {} is not an epoch done (1 to {})",
                r.best_epoch, self.done
            ));
        }
        figures(
            self.rules.protocol,
            r.val_loss,
            r.val_accuracy,
            Some(r.test_loss),
            Some(r.test_accuracy),
        )?;
        confusion(
            &r.confusion,
            self.rules.classes,
            self.rules.test_samples,
            r.test_accuracy,
        )?;
        Ok(ResultLine {
            best_epoch: r.best_epoch,
            test_accuracy: r.test_accuracy,
            test_loss: r.test_loss,
            val_accuracy: r.val_accuracy,
            val_loss: r.val_loss,
            confusion: r.confusion,
        })
    }
}

/// The fields of a line as `T` (unknown keys refused).
fn fields<T: DeserializeOwned>(map: Map<String, Value>) -> Checked<T> {
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rules(protocol: ProtocolKind, dir: &Path) -> Rules {
        Rules {
            protocol,
            epochs: 3,
            classes: 2,
            test_samples: 4,
            resume_epoch: 0,
            checkpoint_dir: std::fs::canonicalize(dir).unwrap(),
        }
    }

    const E1: &str = r#"{"type":"epoch","epoch":1,"train_loss":1.5,"train_accuracy":0.5,"val_loss":1.2,"val_accuracy":0.25,"test_loss":1.1,"test_accuracy":0.75,"confusion":[[2,0],[1,1]],"epoch_seconds":2.0}"#;

    fn refusal(v: &mut Validator, line: &str) -> String {
        v.check(line, 0.0).unwrap_err().to_string()
    }

    #[test]
    fn good_lines_pass_and_carry_their_figures() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Validator::new(rules(ProtocolKind::TrainValTest, dir.path()));
        let Line::Epoch(e) = v.check(E1, 9.0).unwrap() else {
            panic!("not an epoch")
        };
        assert_eq!(e.metrics.epoch, 1);
        assert_eq!(e.metrics.test_accuracy, Some(0.75));
        assert_eq!(e.metrics.epoch_seconds, 2.0);
        assert_eq!(e.confusion, Some(vec![vec![2, 0], vec![1, 1]]));
        let ckpt = dir.path().join("sub").join("c.pt");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(&ckpt, b"state").unwrap();
        let line = format!(
            r#"{{"type":"checkpoint","epoch":1,"path":{:?}}}"#,
            ckpt.display().to_string()
        );
        assert!(matches!(
            v.check(&line, 0.0).unwrap(),
            Line::Checkpoint { epoch: 1, .. }
        ));
        // An epoch without test figures or its time: the measured time.
        let e2 = r#"{"type":"epoch","epoch":2,"train_loss":1,"train_accuracy":0.5,"val_loss":1,"val_accuracy":0.5}"#;
        let Line::Epoch(e) = v.check(e2, 3.5).unwrap() else {
            panic!("not an epoch")
        };
        assert_eq!((e.metrics.epoch_seconds, e.metrics.test_loss), (3.5, None));
        let r = r#"{"type":"result","best_epoch":1,"test_accuracy":0.75,"test_loss":1.1,"val_loss":1.2,"val_accuracy":0.25,"confusion":[[2,0],[1,1]]}"#;
        assert!(matches!(v.check(r, 0.0).unwrap(), Line::Result(_)));
        let e = refusal(&mut v, e2);
        assert!(
            e.contains("after the result") && e.contains("line 5"),
            "{e}"
        );
    }

    #[test]
    fn broken_rules_fail_quoting_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = |p| Validator::new(rules(p, dir.path()));
        let tvt = ProtocolKind::TrainValTest;
        let cases: [(ProtocolKind, String, &str); 12] = [
            (tvt, "garbage".into(), "not a JSON object"),
            (tvt, "[1]".into(), "not a JSON object"),
            (tvt, r#"{"type":"epic"}"#.into(), "unknown type"),
            (
                tvt,
                E1.replace("\"epoch\":1", "\"epoch\":2"),
                "epoch 1 comes next",
            ),
            (tvt, E1.replace("0.75", "1.5"), "test_accuracy is 1.5"),
            (tvt, E1.replace("1.5,", "-1,"), "train_loss is -1"),
            (tvt, E1.replace("\"val_loss\":1.2,", ""), "required under"),
            (
                ProtocolKind::TrainTest,
                E1.into(),
                "left out under train-test",
            ),
            (
                tvt,
                E1.replace("[[2,0],[1,1]]", "[[2,0,0],[1,1]]"),
                "2 rows of 2",
            ),
            (
                tvt,
                E1.replace("[[2,0],[1,1]]", "[[2,0],[1,2]]"),
                "test set has 4",
            ),
            (
                tvt,
                E1.replace("[[2,0],[1,1]]", "[[1,1],[1,1]]"),
                "contradicts",
            ),
            (
                tvt,
                E1.replace("\"epoch_seconds\"", "\"seconds\""),
                "unknown field",
            ),
        ];
        for (protocol, line, needle) in cases {
            let e = refusal(&mut fresh(protocol), &line);
            assert!(e.contains(needle), "{line}: {e}");
            assert!(e.contains("line 1"), "{e}");
            assert!(e.contains(&quote(&line)), "{e}");
        }
        let mut v = fresh(tvt);
        let e = refusal(&mut v, r#"{"type":"checkpoint","epoch":1,"path":"/x"}"#);
        assert!(e.contains("before any epoch"), "{e}");
        v.check(E1, 0.0).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        let line = format!(
            r#"{{"type":"checkpoint","epoch":1,"path":{:?}}}"#,
            outside.path().display().to_string()
        );
        assert!(refusal(&mut v, &line).contains("not under checkpoint_dir"));
        let e = refusal(&mut v, r#"{"type":"checkpoint","epoch":1,"path":"rel.pt"}"#);
        assert!(e.contains("not absolute"), "{e}");
        let long = format!("{{\"type\":\"x{}\"}}", "y".repeat(500));
        let e = refusal(&mut v, &long);
        assert!(e.len() < 400 && e.contains('…'), "{e}");
    }

    #[test]
    fn a_resumed_run_counts_on_from_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rules(ProtocolKind::TrainValTest, dir.path());
        r.resume_epoch = 1;
        let mut v = Validator::new(r);
        assert_eq!(v.done(), 1);
        let e = refusal(&mut v, E1);
        assert!(
            e.contains("epoch 2 comes next") && e.contains("from 2"),
            "{e}"
        );
        let e2 = E1.replace("\"epoch\":1", "\"epoch\":2");
        assert!(v.check(&e2, 0.0).is_ok());
        let e4 = E1.replace("\"epoch\":1", "\"epoch\":3");
        assert!(v.check(&e4, 0.0).is_ok());
        let e5 = E1.replace("\"epoch\":1", "\"epoch\":4");
        assert!(refusal(&mut v, &e5).contains("beyond the job's 3 epochs"));
    }
}
