//! The workers' credentials over gRPC: the admin's `AddWorker`,
//! `ListWorkers`, `RemoveWorker` and `CreateEnrolment`, and the worker
//! service's `Enrol`. Each change reloads the listener's
//! [`CredentialBook`](crate::credentials::CredentialBook).

use spikecv_common::proto as pb;
use tonic::{Request, Response, Status};

use super::CoordinatorService;
use super::convert::check_name;
use crate::credentials::Caller;
use crate::scheduler::{CredentialName, IssuedCredential};
use spikecv_common::proto::limits::MAX_NAME_BYTES;

fn credential_to_proto(c: &IssuedCredential) -> pb::WorkerCredential {
    pb::WorkerCredential {
        name: c.name.clone(),
        slots: c.slots,
        token: c.token.expose().to_owned(),
    }
}

/// Reloads the book after a change; a failure is logged (the change stands,
/// and the next reload picks it up).
async fn reload(service: &CoordinatorService) {
    if let Err(e) = service.reload_credentials().await {
        tracing::error!(error = %e, "reloading the workers' credentials failed");
    }
}

/// `Admin.AddWorker`.
pub(super) async fn add_worker(
    service: &CoordinatorService,
    r: pb::AddWorkerRequest,
) -> Result<Response<pb::WorkerCredential>, Status> {
    let name = CredentialName::parse(&r.name)?;
    let issued = service
        .sched
        .call(move |s| s.add_credential(&name, r.slots))
        .await?;
    reload(service).await;
    Ok(Response::new(credential_to_proto(&issued)))
}

/// `Admin.ListWorkers`.
pub(super) async fn list_workers(
    service: &CoordinatorService,
) -> Result<Response<pb::ListWorkersResponse>, Status> {
    let list = service.sched.call(|s| s.credentials()).await?;
    Ok(Response::new(pb::ListWorkersResponse {
        workers: list
            .into_iter()
            .map(|w| pb::NamedWorker {
                name: w.name,
                slots: w.slots,
                created_ms: w.created_ms,
                state: w.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                running: u32::try_from(w.running).unwrap_or(u32::MAX),
            })
            .collect(),
    }))
}

/// `Admin.RemoveWorker`: the credential stops working at once, and the
/// worker's running attempts are released.
pub(super) async fn remove_worker(
    service: &CoordinatorService,
    r: pb::RemoveWorkerRequest,
) -> Result<Response<pb::RemoveWorkerResponse>, Status> {
    let name = CredentialName::parse(&r.name)?;
    let released = service
        .sched
        .call(move |s| s.remove_credential(&name))
        .await?;
    reload(service).await;
    Ok(Response::new(pb::RemoveWorkerResponse {
        released: released.iter().map(ToString::to_string).collect(),
    }))
}

/// `Admin.CreateEnrolment`.
pub(super) async fn create_enrolment(
    service: &CoordinatorService,
    r: pb::CreateEnrolmentRequest,
) -> Result<Response<pb::CreateEnrolmentResponse>, Status> {
    let issued = service
        .sched
        .call(move |s| s.create_enrolment(r.uses, r.ttl_seconds, r.slots))
        .await?;
    reload(service).await;
    Ok(Response::new(pb::CreateEnrolmentResponse {
        token: issued.token.expose().to_owned(),
        expires_ms: issued.expires_ms,
    }))
}

/// `Coordinator.Enrol`: only with an enrolment token as the bearer token.
pub(super) async fn enrol(
    service: &CoordinatorService,
    request: Request<pb::EnrolRequest>,
) -> Result<Response<pb::EnrolResponse>, Status> {
    let Caller::Enrolment(digest) = Caller::of(&request) else {
        return Err(Status::permission_denied(
            "Enrol: the call must carry an enrolment token as its bearer token",
        ));
    };
    let hint = request.into_inner().name_hint;
    check_name("name_hint", &hint, MAX_NAME_BYTES)?;
    let issued = service.sched.call(move |s| s.enrol(&digest, &hint)).await?;
    reload(service).await;
    Ok(Response::new(pb::EnrolResponse {
        credential: Some(credential_to_proto(&issued)),
    }))
}
