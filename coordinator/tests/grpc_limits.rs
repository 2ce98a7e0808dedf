//! The gRPC listener's size limits on a real loopback socket: a registration
//! past the small-message limit and an experiment text past Submit's are
//! refused with RESOURCE_EXHAUSTED naming the method and both sizes, before
//! they are buffered; and a sweep past the configuration limit is refused at
//! Submit with RESOURCE_EXHAUSTED before it is expanded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use net_support::{registration, start};
use spikecv_common::proto::SubmitRequest;
use spikecv_coordinator::auth::AuthConfig;
use spikecv_coordinator::call_limits::{SUBMIT_MESSAGE_BYTES, WORKER_STATE_MESSAGE_BYTES};

#[tokio::test]
async fn messages_past_their_service_limit_and_huge_sweeps_are_refused() {
    let server = start(2, "fp", AuthConfig::default()).await;
    // A registration carrying a 2 MiB name (an honest one is 256 bytes at
    // most): past the limit of registrations, leases and heartbeats.
    let mut reg = registration("w", "fp");
    reg.worker_name = "n".repeat(2 << 20);
    let err = server.worker(None).register(reg).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(
        err.message().contains("/spikecv.v1.Coordinator/Register"),
        "{err}"
    );
    assert!(
        err.message()
            .contains(&format!("limit is {WORKER_STATE_MESSAGE_BYTES} bytes")),
        "{err}"
    );
    // An honest registration on the same server still goes through.
    server
        .worker(None)
        .register(registration("w", "fp"))
        .await
        .unwrap();

    // An experiment text past the admin limit.
    let text = format!("# {}\n", "x".repeat(SUBMIT_MESSAGE_BYTES));
    let err = server
        .admin(None)
        .submit(SubmitRequest { config_toml: text })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("/spikecv.v1.Admin/Submit"), "{err}");

    // A grid of 10^12 configurations: RESOURCE_EXHAUSTED naming the limit.
    let list: Vec<String> = (1..=1000).map(|i| format!("{}e-6", i)).collect();
    let list = format!("[{}]", list.join(", "));
    let sweep: Vec<String> = [
        "training.lr",
        "training.momentum",
        "simulation.vth",
        "simulation.tau",
    ]
    .iter()
    .map(|k| format!("\"{k}\" = {list}"))
    .collect();
    let text = format!(
        "[data]\nroot = \"/nonexistent\"\n[protocol]\nfolds = 2\nseeds = [0]\n[sweep]\n{}\n",
        sweep.join("\n")
    );
    let err = server
        .admin(None)
        .submit(SubmitRequest { config_toml: text })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("the limit is 10000"), "{err}");
    server.stop().await;
}
