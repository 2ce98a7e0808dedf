//! The experiment plan: an [`ExperimentConfig`] expanded into its jobs
//! (variant × seed × fold), each with its recordings and a [`JobId`] that hashes
//! everything that determines the job's result.
//!
//! Planning reads nothing but the data set's `filelist.txt`, so `coordinator plan`
//! works on a head node that holds only the metadata.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::error::DataError;
use crate::dataset::kind::DataKind;
use crate::dataset::variant::Variant;
use crate::experiment::config::ExperimentConfig;
use crate::experiment::configurations::{self, Configuration};
use crate::experiment::cv::{self, CvError, FoldSplit};
use crate::experiment::error::ConfigError;
use crate::experiment::network::NetworkSpec;
use crate::experiment::sections::{ProtocolKind, SimulationConfig, TrainingConfig, is_one};
use crate::experiment::trainer::TrainerConfig;

/// Hex digits of SHA-256 kept in a [`JobId`] (64 bits: collisions are not a concern
/// for the few thousand jobs a store holds).
pub const JOB_ID_HEX_LEN: usize = 16;

/// A job's identity: a shortened SHA-256 (hex) of everything that determines its
/// result (input down-scaling, simulation and training settings, protocol, variant, seed, fold, the
/// split's recordings and the data fingerprint when known). Not the experiment's
/// name, nor its retry budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// Wraps an id read back from a store or a request (not checked).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One job of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The job's identity.
    pub id: JobId,
    /// Data set variant.
    pub variant: Variant,
    /// Seed (fold assignment and initialisation).
    pub seed: u64,
    /// Fold, 0-based in scikit-learn's `KFold.split` order.
    pub fold: u32,
    /// The protocol that selects the reported model.
    pub protocol: ProtocolKind,
    /// Train/val/test recordings.
    pub split: FoldSplit,
    /// Index of the job's configuration in [`Plan::configurations`] (0
    /// without a sweep).
    #[serde(default)]
    pub configuration: usize,
}

/// An experiment's configurations (one without `[sweep]`) and their jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The configurations, in sweep order.
    pub configurations: Vec<Configuration>,
    /// Configurations × variants × seeds × folds, in that nesting.
    pub jobs: Vec<PlannedJob>,
}

impl Plan {
    /// The config `job` runs: its configuration's, narrowed to its seed and
    /// variant (what the store keeps and the worker trains).
    pub fn job_config(&self, job: &PlannedJob) -> Option<ExperimentConfig> {
        self.configurations
            .get(job.configuration)
            .map(|c| c.config.for_job(job.seed, job.variant))
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The data root holds no kind's recording list (named: the default
    /// kind's, `filelist.txt`).
    #[error(
        "data root {root} has no {}; a plan needs the file list (one recording name a line)",
        DataKind::default().marker()
    )]
    NoFileList {
        /// The data root.
        root: PathBuf,
    },
    /// The file list is unreadable or malformed.
    #[error(transparent)]
    FileList(#[from] DataError),
    /// A variant keeps too few recordings for the folds, or a seed is out of range.
    #[error("{variant} variant, seed {seed}, fold {fold}: {source}")]
    Split {
        /// The variant.
        variant: Variant,
        /// The seed.
        seed: u64,
        /// The fold.
        fold: u32,
        /// Why the split failed.
        #[source]
        source: CvError,
    },
    /// The `[sweep]` is invalid.
    #[error(transparent)]
    Sweep(#[from] ConfigError),
    /// Two configurations of a sweep would run the same job.
    #[error(
        "configurations {first:?} and {second:?} give the same job {id}: they do not differ in anything that changes a result"
    )]
    SameJob {
        /// The job id.
        id: JobId,
        /// The first configuration's label.
        first: String,
        /// The second configuration's label.
        second: String,
    },
}

/// The split of fold `fold` of seed `seed` over a variant's `recordings` (in
/// file-list order) under `config`'s protocol: the data set's own split for
/// `official`, else k-fold over recordings (SL-Animals, one per person) or
/// over people (DVS128 Gesture).
pub fn job_split(
    config: &ExperimentConfig,
    recordings: &[String],
    seed: u64,
    fold: u32,
) -> Result<FoldSplit, CvError> {
    let p = &config.protocol;
    let kind = config.data.kind;
    if p.kind == ProtocolKind::Official {
        if fold != 0 {
            return Err(CvError::NoSuchFold { fold, folds: 1 });
        }
        let (train, test) = kind
            .official_split(recordings)
            .ok_or(CvError::NoOfficialSplit {
                kind: kind.as_str(),
            })?;
        let split = FoldSplit {
            train,
            val: Vec::new(),
            test,
        };
        for (set, list) in [("train", &split.train), ("test", &split.test)] {
            if list.is_empty() {
                return Err(CvError::EmptyOfficialSet { set });
            }
        }
        return Ok(split);
    }
    if kind.folds_over_people() {
        cv::split_by_person(recordings, kind, p, seed, fold)
    } else {
        cv::split(recordings, p, seed, fold)
    }
}

/// Reads the recording list of the kind `root` holds ([`DataKind::detect`]:
/// SL-Animals' `filelist.txt`, DVS128 Gesture's trial lists, training list
/// first); a clear error when the root holds none.
pub fn read_root_file_list(root: &Path) -> Result<Vec<String>, PlanError> {
    match DataKind::detect(root) {
        Some(kind) => Ok(kind.read_recordings(root)?),
        None => Err(PlanError::NoFileList {
            root: root.to_path_buf(),
        }),
    }
}

/// What a job id hashes: every input that changes the job's result.
#[derive(Serialize)]
struct JobIdentity<'a> {
    /// Left out at 1 (the reference), so ids from before it was hashed stand.
    #[serde(skip_serializing_if = "is_one")]
    downscale: u32,
    simulation: &'a SimulationConfig,
    training: TrainingConfig,
    protocol: ProtocolKind,
    folds: u32,
    val_fraction: Option<f64>,
    variant: Variant,
    seed: u64,
    fold: u32,
    split: &'a FoldSplit,
    data_fingerprint: Option<&'a str>,
    /// Left out for SL-Animals (the default), so its ids stand.
    #[serde(skip_serializing_if = "DataKind::is_default")]
    data_kind: DataKind,
    /// The written block list; left out for the default network (no
    /// `[network]`), so ids from before networks were configurable stand.
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'a NetworkSpec>,
    /// The training script and its params; left out for the native engine,
    /// so native ids stand.
    #[serde(skip_serializing_if = "Option::is_none")]
    trainer: Option<&'a TrainerConfig>,
}

/// The id of one job of `config`.
pub fn job_id(
    config: &ExperimentConfig,
    variant: Variant,
    seed: u64,
    fold: u32,
    split: &FoldSplit,
    data_fingerprint: Option<&str>,
) -> JobId {
    let mut training = config.training.clone();
    // How often checkpoints are written does not change the result.
    training.checkpoint_every = 0;
    let identity = JobIdentity {
        downscale: config.data.downscale,
        simulation: &config.simulation,
        training,
        protocol: config.protocol.kind,
        folds: config.protocol.kind.fold_count(config.protocol.folds),
        val_fraction: match config.protocol.kind {
            ProtocolKind::TrainValTest => Some(config.protocol.val_fraction),
            ProtocolKind::TrainTest | ProtocolKind::Official => None,
        },
        variant,
        seed,
        fold,
        split,
        data_fingerprint,
        data_kind: config.data.kind,
        network: config.network.as_ref(),
        trainer: config.trainer.as_ref().filter(|t| !t.is_native()),
    };
    // Serialising plain structs of numbers, strings and enums cannot fail.
    let bytes = serde_json::to_vec(&identity).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(&bytes));
    JobId(digest[..JOB_ID_HEX_LEN].to_owned())
}

/// Expands `config` into its jobs over `file_list` (the data root's file list, in
/// order): configurations in sweep order, then variants in config order, then
/// seeds, then folds. The split of a job depends on (variant, seed, fold) only,
/// so every configuration sees the same folds.
pub fn plan_configurations(
    config: &ExperimentConfig,
    file_list: &[String],
    data_fingerprint: Option<&str>,
) -> Result<Plan, PlanError> {
    let configurations = configurations::configurations(config)?;
    let p = &config.protocol;
    let mut splits = Vec::new();
    for &variant in &p.variants {
        let recordings = config.data.kind.variant_recordings(file_list, variant);
        for &seed in &p.seeds {
            for fold in 0..p.kind.fold_count(p.folds) {
                let split = job_split(config, &recordings, seed, fold).map_err(|source| {
                    PlanError::Split {
                        variant,
                        seed,
                        fold,
                        source,
                    }
                })?;
                splits.push((variant, seed, fold, split));
            }
        }
    }
    let mut jobs = Vec::with_capacity(configurations.len() * splits.len());
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for (index, configuration) in configurations.iter().enumerate() {
        for (variant, seed, fold, split) in &splits {
            let id = job_id(
                &configuration.config,
                *variant,
                *seed,
                *fold,
                split,
                data_fingerprint,
            );
            if let Some(&other) = seen.get(&id) {
                return Err(PlanError::SameJob {
                    id,
                    first: configurations[other].label.clone(),
                    second: configuration.label.clone(),
                });
            }
            seen.insert(id.clone(), index);
            jobs.push(PlannedJob {
                id,
                variant: *variant,
                seed: *seed,
                fold: *fold,
                protocol: p.kind,
                split: split.clone(),
                configuration: index,
            });
        }
    }
    Ok(Plan {
        configurations,
        jobs,
    })
}

/// The jobs of [`plan_configurations`].
pub fn plan(
    config: &ExperimentConfig,
    file_list: &[String],
    data_fingerprint: Option<&str>,
) -> Result<Vec<PlannedJob>, PlanError> {
    Ok(plan_configurations(config, file_list, data_fingerprint)?.jobs)
}

/// [`plan_configurations`] over the file list of `config.data.root`.
pub fn plan_from_root(
    config: &ExperimentConfig,
    data_fingerprint: Option<&str>,
) -> Result<Plan, PlanError> {
    let file_list = read_root_file_list(&config.data.root)?;
    plan_configurations(config, &file_list, data_fingerprint)
}

/// One job as `coordinator plan --json` prints it (DESIGN.md, "Command line").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The job id.
    pub job: String,
    /// `whole` or `reduced`.
    pub variant: Variant,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// `train-val-test` or `train-test`.
    pub protocol: ProtocolKind,
    /// Its recordings, printed as `train`, `val` and `test`.
    #[serde(flatten)]
    pub split: FoldSplit,
}

impl From<&PlannedJob> for PlanEntry {
    fn from(job: &PlannedJob) -> Self {
        Self {
            job: job.id.to_string(),
            variant: job.variant,
            seed: job.seed,
            fold: job.fold,
            protocol: job.protocol,
            split: job.split.clone(),
        }
    }
}

/// One configuration of a sweep as `coordinator plan --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanConfigurationEntry {
    /// Readable label, e.g. `steps=100 lr=0.0003`.
    pub label: String,
    /// The swept values by dotted key.
    pub values: BTreeMap<String, toml::Value>,
    /// Whether the others are compared with this one.
    pub baseline: bool,
    /// Its jobs.
    pub jobs: Vec<PlanEntry>,
}

impl Plan {
    /// The configurations with their jobs, for `coordinator plan --json`.
    pub fn configuration_entries(&self) -> Vec<PlanConfigurationEntry> {
        self.configurations
            .iter()
            .enumerate()
            .map(|(i, c)| PlanConfigurationEntry {
                label: c.label.clone(),
                values: c.values.clone(),
                baseline: c.baseline,
                jobs: self
                    .jobs
                    .iter()
                    .filter(|j| j.configuration == i)
                    .map(PlanEntry::from)
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::dvs_gesture::LAB;
    use crate::dataset::dvs_gesture::{self, kind::DVS_GESTURE};
    use crate::dataset::sl_animals::REDUCED;

    fn config(extra: &str) -> ExperimentConfig {
        let text = format!("[data]\nroot = \"d\"\n[protocol]\nseeds = [0, 1]\n{extra}");
        ExperimentConfig::from_toml_str(&text).unwrap()
    }

    fn file_list() -> Vec<String> {
        let mut v: Vec<String> = (0..6).map(|i| format!("user{i:02}_indoor")).collect();
        v.extend((25..35).map(|i| format!("user{i:02}_imse")));
        v
    }

    #[test]
    fn expands_variant_seed_fold() {
        let jobs = plan(&config(""), &file_list(), None).unwrap();
        assert_eq!(jobs.len(), 2 * 2 * 4);
        assert_eq!(
            (jobs[0].variant, jobs[0].seed, jobs[0].fold),
            (Variant::WHOLE, 0, 0)
        );
        assert_eq!(
            (jobs[15].variant, jobs[15].seed, jobs[15].fold),
            (REDUCED, 1, 3)
        );
        for job in jobs.iter().filter(|j| j.variant == REDUCED) {
            let all = job
                .split
                .train
                .iter()
                .chain(&job.split.val)
                .chain(&job.split.test);
            assert!(all.clone().all(|r| !r.contains("_indoor")));
            assert_eq!(all.count(), 10);
        }
        let mut ids: Vec<&JobId> = jobs.iter().map(|j| &j.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len(), "job ids are unique");
        assert!(jobs.iter().all(|j| j.id.as_str().len() == JOB_ID_HEX_LEN));
    }

    #[test]
    fn ids_ignore_name_and_retries_but_not_results() {
        let base = plan(&config(""), &file_list(), None).unwrap();
        let renamed = plan(&config("max_attempts = 7\n"), &file_list(), None).unwrap();
        assert_eq!(base, renamed);
        let mut named = config("");
        named.name = Some("other".into());
        named.training.checkpoint_every = 5;
        assert_eq!(plan(&named, &file_list(), None).unwrap(), base);

        let lr = plan(&config("[training]\nlr = 0.01\n"), &file_list(), None).unwrap();
        assert!(lr.iter().zip(&base).all(|(a, b)| a.id != b.id));
        let mut downscaled = config("");
        downscaled.data.downscale = 4;
        let ds = plan(&downscaled, &file_list(), None).unwrap();
        assert!(ds.iter().zip(&base).all(|(a, b)| a.id != b.id));
        let fp = plan(&config(""), &file_list(), Some("abc")).unwrap();
        assert!(fp.iter().zip(&base).all(|(a, b)| a.id != b.id));
        let tt = plan(&config("kind = \"train-test\"\n"), &file_list(), None).unwrap();
        assert!(
            tt.iter()
                .zip(&base)
                .all(|(a, b)| a.id != b.id && !b.split.val.is_empty() && a.split.val.is_empty())
        );
    }

    #[test]
    fn known_job_ids_stay_unchanged() {
        // Ids computed before sweeps existed: an experiment without [sweep]
        // keeps the ids (and so the finished jobs) it had.
        let jobs = plan(&config(""), &file_list(), Some("fp")).unwrap();
        assert_eq!(jobs[0].id.as_str(), "8407b358d3444d6e");
        assert_eq!(jobs[15].id.as_str(), "d61110b8715d4555");
    }

    #[test]
    fn a_trainer_is_part_of_the_id_but_the_native_one_is_not() {
        let ids = |extra: &str| -> Vec<String> {
            plan(&config(extra), &file_list(), Some("fp"))
                .unwrap()
                .iter()
                .map(|j| j.id.as_str().to_owned())
                .collect()
        };
        let native = ids("");
        assert_eq!(native[0], "8407b358d3444d6e");
        assert_eq!(ids("[trainer]\nname = \"native\"\n"), native);
        let script = ids("[trainer]\nname = \"stbp-pytorch\"\n");
        assert!(script.iter().zip(&native).all(|(a, b)| a != b));
        let tuned = ids("[trainer]\nname = \"stbp-pytorch\"\n[trainer.params]\nhidden = 64\n");
        assert!(tuned.iter().zip(&script).all(|(a, b)| a != b));
    }

    #[test]
    fn a_sweep_compares_a_script_with_the_native_engine_on_the_same_folds() {
        let c = config(
            "[trainer]\nframes = true\n[trainer.params]\nhidden = 64\n[sweep]\n\"trainer.name\" = [\"native\", \"py\"]\n",
        );
        let jobs = plan(&c, &file_list(), Some("fp")).unwrap();
        let half = jobs.len() / 2;
        let (a, b) = jobs.split_at(half);
        assert!(
            a.iter()
                .zip(b)
                .all(|(x, y)| x.split == y.split && x.id != y.id)
        );
        // The native rows are the experiment without [trainer].
        let native = plan(&config(""), &file_list(), Some("fp")).unwrap();
        assert!(a.iter().zip(&native).all(|(x, y)| x.id == y.id));
    }

    #[test]
    fn missing_file_list_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_root_file_list(dir.path()).unwrap_err();
        assert!(matches!(err, PlanError::NoFileList { .. }));
        assert!(err.to_string().contains("filelist.txt"));
    }

    #[test]
    fn too_few_recordings_names_the_variant() {
        let list: Vec<String> = vec!["user00_indoor".into(), "a".into(), "b".into(), "c".into()];
        let err = plan(&config(""), &list, None).unwrap_err();
        assert!(err.to_string().contains("reduced"), "{err}");
    }

    fn gesture_list() -> Vec<String> {
        let mut v = Vec::new();
        for u in [1, 2, 3, 4, 5, 24, 25, 26] {
            for l in ["lab", "led"] {
                v.push(format!("user{u:02}_{l}"));
            }
        }
        v
    }

    #[test]
    fn official_split_is_one_job_per_seed_and_variant() {
        let text = "[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n[protocol]\nkind = \"official\"\nseeds = [0, 1, 2]\nvariants = [\"whole\", \"led\"]\n";
        let c = ExperimentConfig::from_toml_str(text).unwrap();
        let jobs = plan(&c, &gesture_list(), None).unwrap();
        assert_eq!(jobs.len(), 2 * 3, "variants x seeds, one fold");
        for j in &jobs {
            assert_eq!((j.fold, j.protocol), (0, ProtocolKind::Official));
            assert!(j.split.val.is_empty());
            assert!(
                j.split
                    .train
                    .iter()
                    .all(|r| dvs_gesture::user_number(r).unwrap() <= 23)
            );
            assert!(
                j.split
                    .test
                    .iter()
                    .all(|r| dvs_gesture::user_number(r).unwrap() >= 24)
            );
            assert!(
                j.split
                    .train
                    .iter()
                    .chain(&j.split.test)
                    .all(|r| DVS_GESTURE.keeps(j.variant, r))
            );
        }
        let whole = &jobs[0].split;
        assert_eq!((whole.train.len(), whole.test.len()), (10, 6));
        let led = &jobs[3].split;
        assert_eq!(led.test, ["user24_led", "user25_led", "user26_led"]);
        // Seeds give distinct jobs; the ignored `folds` does not change ids.
        let mut ids: Vec<&JobId> = jobs.iter().map(|j| &j.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 6);
        let five = ExperimentConfig::from_toml_str(
            &text.replace("[protocol]\n", "[protocol]\nfolds = 5\n"),
        )
        .unwrap();
        assert_eq!(plan(&five, &gesture_list(), None).unwrap(), jobs);
    }

    #[test]
    fn official_split_needs_a_data_set_that_has_one() {
        let err = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"official\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("protocol.kind"), "{err}");
        assert!(err.to_string().contains("sl-animals"), "{err}");
    }

    #[test]
    fn a_lighting_variant_folds_its_own_recordings_over_people() {
        let text = "[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n[protocol]\nseeds = [0]\nfolds = 4\nvariants = [\"lab\"]\n";
        let c = ExperimentConfig::from_toml_str(text).unwrap();
        let jobs = plan(&c, &gesture_list(), None).unwrap();
        assert_eq!(jobs.len(), 4);
        let mut tested: Vec<String> = Vec::new();
        for j in &jobs {
            assert_eq!(j.variant, LAB);
            let all: Vec<&String> = j
                .split
                .train
                .iter()
                .chain(&j.split.val)
                .chain(&j.split.test)
                .collect();
            assert_eq!(all.len(), 8, "the 8 lab recordings");
            assert!(all.iter().all(|r| r.ends_with("_lab")));
            tested.extend(j.split.test.iter().cloned());
        }
        tested.sort();
        assert_eq!(tested, DVS_GESTURE.variant_recordings(&gesture_list(), LAB));
        // SL-Animals does not offer a lighting variant.
        let err = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[protocol]\nvariants = [\"lab\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("protocol.variants"), "{err}");
    }
}
