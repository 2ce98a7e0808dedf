//! What a report's results were computed on: the distinct manifests of its
//! succeeded jobs (one environment per manifest, the slot's device index
//! aside), and the build that made the report.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::manifest::Manifest;

use crate::store::records::JobRecord;

/// The build that made a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportBuild {
    /// spikecv's version.
    pub spikecv_version: String,
    /// The git commit, when the build was told (`SPIKECV_COMMIT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// SHA-256 of the running binary (empty when unreadable).
    pub binary_sha256: String,
}

impl ReportBuild {
    /// This process's build.
    pub fn current() -> Self {
        static HASH: OnceLock<String> = OnceLock::new();
        let hash = HASH.get_or_init(|| {
            std::env::current_exe()
                .and_then(std::fs::read)
                .map(|bytes| {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(&bytes))
                })
                .unwrap_or_default()
        });
        Self {
            spikecv_version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: option_env!("SPIKECV_COMMIT").map(str::to_owned),
            binary_sha256: hash.clone(),
        }
    }
}

/// One environment: a manifest (its `device` left empty) and the jobs
/// computed in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    /// The manifest, without the slot's device index.
    pub manifest: Manifest,
    /// Succeeded jobs computed here.
    pub jobs: usize,
    /// The workers that computed them, sorted.
    pub workers: Vec<String>,
}

/// The environments of a report's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environments {
    /// The build that made the report.
    pub generated_by: ReportBuild,
    /// One per distinct manifest, most jobs first.
    pub environments: Vec<Environment>,
    /// Succeeded jobs whose worker sent no manifest.
    pub without_manifest: usize,
    /// Configurations whose results came from more than one version of
    /// their training script (docs/trainers.md): never mixed silently.
    pub mixed_scripts: Vec<MixedScript>,
}

/// A configuration whose succeeded jobs ran different versions of its script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MixedScript {
    /// The configuration's index.
    pub configuration: usize,
    /// The trainer's name.
    pub trainer: String,
    /// Each script SHA-256 with the jobs that ran it, most jobs first.
    pub versions: Vec<(String, usize)>,
}

/// The configurations whose succeeded jobs ran more than one version of
/// their script.
fn mixed_scripts(jobs: &[&JobRecord]) -> Vec<MixedScript> {
    let mut by: BTreeMap<(usize, String), BTreeMap<String, usize>> = BTreeMap::new();
    for job in jobs.iter().filter(|j| j.status == JobStatus::Succeeded) {
        let Some(m) = job.provenance.as_ref().map(|p| &p.manifest) else {
            continue;
        };
        if let (Some(t), Some(sha)) = (&m.trainer, &m.trainer_sha256) {
            *by.entry((job.configuration, t.clone()))
                .or_default()
                .entry(sha.clone())
                .or_default() += 1;
        }
    }
    by.into_iter()
        .filter(|(_, versions)| versions.len() > 1)
        .map(|((configuration, trainer), versions)| {
            let mut versions: Vec<(String, usize)> = versions.into_iter().collect();
            versions.sort_by_key(|(sha, n)| (std::cmp::Reverse(*n), sha.clone()));
            MixedScript {
                configuration,
                trainer,
                versions,
            }
        })
        .collect()
}

/// The environments of `jobs`' succeeded results.
pub fn environments(jobs: &[&JobRecord]) -> Environments {
    let mut by_manifest: BTreeMap<String, Environment> = BTreeMap::new();
    let mut without_manifest = 0;
    for job in jobs.iter().filter(|j| j.status == JobStatus::Succeeded) {
        let Some(p) = &job.provenance else {
            without_manifest += 1;
            continue;
        };
        let manifest = Manifest {
            device: String::new(),
            ..p.manifest.clone()
        };
        let key = format!("{:?}", manifest.fields());
        let env = by_manifest.entry(key).or_insert_with(|| Environment {
            manifest,
            jobs: 0,
            workers: Vec::new(),
        });
        env.jobs += 1;
        if let Some(w) = &job.worker
            && !env.workers.contains(w)
        {
            env.workers.push(w.clone());
        }
    }
    let mut environments: Vec<Environment> = by_manifest.into_values().collect();
    for e in &mut environments {
        e.workers.sort();
    }
    environments.sort_by_key(|e| std::cmp::Reverse(e.jobs));
    Environments {
        generated_by: ReportBuild::current(),
        environments,
        without_manifest,
        mixed_scripts: mixed_scripts(jobs),
    }
}

#[cfg(test)]
mod tests {
    use spikecv_common::dataset::variant::Variant;
    use spikecv_common::experiment::manifest::Provenance;
    use spikecv_common::experiment::sections::ProtocolKind;

    use super::*;

    fn job(worker: &str, device: &str, threads: Option<u32>) -> JobRecord {
        let mut j = JobRecord::pending("e", Variant::WHOLE, 0, 0, ProtocolKind::TrainValTest);
        j.status = JobStatus::Succeeded;
        j.worker = Some(worker.into());
        j.provenance = threads.map(|threads| Provenance {
            manifest: Manifest {
                device: device.into(),
                threads,
                ..Manifest::default()
            },
            weights_sha256: String::new(),
        });
        j
    }

    #[test]
    fn results_of_two_versions_of_a_script_are_flagged() {
        let scripted = |configuration: usize, sha: &str| {
            let mut j = job("a", "cpu", Some(1));
            j.configuration = configuration;
            if let Some(p) = j.provenance.as_mut() {
                p.manifest.trainer = Some("py".into());
                p.manifest.trainer_sha256 = Some(sha.into());
            }
            j
        };
        let jobs = [
            scripted(0, "aa"),
            scripted(0, "bb"),
            scripted(0, "bb"),
            scripted(1, "aa"),
            job("a", "cpu", Some(1)),
        ];
        let refs: Vec<&JobRecord> = jobs.iter().collect();
        let e = environments(&refs);
        assert_eq!(
            e.mixed_scripts,
            vec![MixedScript {
                configuration: 0,
                trainer: "py".into(),
                versions: vec![("bb".into(), 2), ("aa".into(), 1)],
            }]
        );
    }

    #[test]
    fn slots_of_one_kind_are_one_environment() {
        let jobs = [
            job("b", "cuda:1", Some(8)),
            job("a", "cuda:0", Some(8)),
            job("a", "cpu", Some(2)),
            job("c", "cpu", None),
        ];
        let refs: Vec<&JobRecord> = jobs.iter().collect();
        let e = environments(&refs);
        assert_eq!(e.without_manifest, 1);
        assert_eq!(e.environments.len(), 2);
        assert_eq!(e.environments[0].jobs, 2);
        assert_eq!(e.environments[0].workers, ["a", "b"]);
        assert_eq!(e.environments[0].manifest.threads, 8);
        assert_eq!(e.environments[1].jobs, 1);
    }
}
