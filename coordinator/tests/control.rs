//! `coordinator cancel` and `coordinator retry` over real gRPC: a
//! configuration of a sweep cancelled by label, put back in the queue, a job
//! by id, a whole experiment by name; the worker token refused; unknown
//! names refused naming the field; the commands print what changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use clap::Parser;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::proto::{CancelRequest, RetryRequest};
use spikecv_coordinator::auth::{AuthConfig, Token};
use spikecv_coordinator::commands::cli::{Cli, Command};
use spikecv_coordinator::commands::control::{run_cancel, run_retry};
use spikecv_coordinator::scheduler::Submission;

const ADMIN: &str = "admin-secret";
const WORKER: &str = "worker-secret";

/// Submits a named two-configuration sweep (2 folds each) beside the test
/// server's own experiment; returns its jobs by configuration.
async fn sweep(server: &net_support::TestServer) -> (String, Vec<Vec<JobId>>) {
    let data = tempfile::tempdir().unwrap();
    net_support::file_list_root(
        data.path(),
        &["user00_indoor", "user01_indoor", "user35_dc", "user36_dc"],
    );
    let text = format!(
        "name = \"ctl\"\n[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n\
         [training]\nepochs = 2\n[sweep]\n\"training.lr\" = [0.001, 0.01]\n",
        data.path().display().to_string()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    let submission = Submission::from_config(config, text, Some("fp".into())).unwrap();
    let by_configuration: Vec<Vec<JobId>> = (0..2)
        .map(|c| {
            submission
                .jobs
                .iter()
                .filter(|j| j.configuration == c)
                .map(|j| j.id.clone())
                .collect()
        })
        .collect();
    let outcome = server
        .sched
        .call(move |s| s.submit(&submission))
        .await
        .unwrap();
    (outcome.experiment.to_string(), by_configuration)
}

async fn status(server: &net_support::TestServer, job: &JobId) -> JobStatus {
    let job = job.clone();
    server
        .sched
        .call(move |s| Ok(s.store().job(&job).unwrap().unwrap().status))
        .await
        .unwrap()
}

fn ids(jobs: &[JobId]) -> Vec<String> {
    jobs.iter().map(|j| j.as_str().to_owned()).collect()
}

#[tokio::test]
async fn cancel_and_retry_by_configuration_job_and_experiment() {
    let auth = AuthConfig {
        worker: Some(Token::new(WORKER)),
        admin: Some(Token::new(ADMIN)),
    };
    let server = net_support::start(2, "fp", auth).await;
    let (experiment, jobs) = sweep(&server).await;
    let mut admin = server.admin(Some(ADMIN));

    // The second configuration, by its label: both its jobs, nothing else.
    let r = admin
        .cancel(CancelRequest {
            experiment: "ctl".into(),
            configuration: "lr=0.01".into(),
            ..CancelRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.cancelled);
    let mut got = r.job_ids.clone();
    got.sort();
    let mut want = ids(&jobs[1]);
    want.sort();
    assert_eq!(got, want);
    for job in &jobs[1] {
        assert_eq!(status(&server, job).await, JobStatus::Cancelled);
    }
    for job in &jobs[0] {
        assert_eq!(status(&server, job).await, JobStatus::Pending);
    }

    // Back in the queue, by the experiment's id.
    let r = admin
        .retry(RetryRequest {
            experiment: experiment.clone(),
            cancelled: true,
            ..RetryRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.job_ids.len(), 2);
    for job in &jobs[1] {
        assert_eq!(status(&server, job).await, JobStatus::Pending);
    }

    // One job by id; again: nothing left to cancel.
    for expected in [true, false] {
        let r = admin
            .cancel(CancelRequest {
                job_id: jobs[0][0].as_str().to_owned(),
                ..CancelRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.cancelled, expected);
    }
    assert_eq!(status(&server, &jobs[0][0]).await, JobStatus::Cancelled);

    // Refusals: the worker token, an unknown experiment or configuration, a
    // configuration without its experiment, a retry asking for nothing.
    let mut as_worker = server.admin(Some(WORKER));
    let refused = as_worker
        .cancel(CancelRequest {
            experiment: "ctl".into(),
            ..CancelRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    for (request, field) in [
        (
            CancelRequest {
                experiment: "nope".into(),
                ..CancelRequest::default()
            },
            "experiment",
        ),
        (
            CancelRequest {
                experiment: "ctl".into(),
                configuration: "lr=9".into(),
                ..CancelRequest::default()
            },
            "configuration",
        ),
        (
            CancelRequest {
                configuration: "0".into(),
                ..CancelRequest::default()
            },
            "configuration",
        ),
    ] {
        let e = admin.cancel(request).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(field), "{e:?}");
    }
    let e = admin
        .retry(RetryRequest {
            experiment: "ctl".into(),
            ..RetryRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // The commands, as an operator runs them: the whole experiment by name,
    // then its cancelled jobs back.
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), ADMIN).unwrap();
    let token_path = token.path().to_str().unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["coordinator"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--coordinator", &server.url, "--token-file", token_path]);
        Cli::try_parse_from(all).unwrap().command
    };
    let mut out = Vec::new();
    let Command::Cancel(args) = cli(&["cancel", "--experiment", "ctl"]) else {
        panic!("not cancel")
    };
    run_cancel(&args, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("cancelled 3 job(s)"), "{text}");
    for job in jobs[0][1..].iter().chain(&jobs[1]) {
        assert!(text.contains(job.as_str()), "{text}");
        assert_eq!(status(&server, job).await, JobStatus::Cancelled);
    }
    let mut out = Vec::new();
    let Command::Retry(args) = cli(&["retry", "--experiment", "ctl", "--cancelled"]) else {
        panic!("not retry")
    };
    run_retry(&args, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("requeued 4 job(s)"), "{text}");
    for job in jobs.iter().flatten() {
        assert_eq!(status(&server, job).await, JobStatus::Pending);
    }
    server.stop().await;
}
