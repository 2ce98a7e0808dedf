//! Scheduler errors as gRPC statuses: the one place where the scheduler's
//! typed refusals ([`SchedulerError`]) become status codes. The scheduler and
//! its thread ([`crate::scheduler::SchedulerHandle`]) know nothing of gRPC.

use tonic::Status;

use crate::scheduler::SchedulerError;

/// The gRPC status of a scheduler error.
pub fn status_of(e: &SchedulerError) -> Status {
    let message = e.to_string();
    match e {
        SchedulerError::NotOwner { .. }
        | SchedulerError::WrongSecret { .. }
        | SchedulerError::EnrolmentRefused { .. }
        | SchedulerError::NotYourIdentity { .. } => Status::permission_denied(message),
        SchedulerError::CredentialExists { .. } => Status::already_exists(message),
        SchedulerError::UnknownCredential { .. } | SchedulerError::NotSuspect { .. } => {
            Status::not_found(message)
        }
        SchedulerError::Fenced { .. }
        | SchedulerError::FingerprintMismatch { .. }
        | SchedulerError::AlreadyFinished { .. } => Status::failed_precondition(message),
        SchedulerError::UnknownWorker { .. }
        | SchedulerError::UnknownAttempt { .. }
        | SchedulerError::UnknownJob { .. } => Status::not_found(message),
        SchedulerError::BadRequest { .. } | SchedulerError::Plan(_) => {
            Status::invalid_argument(message)
        }
        SchedulerError::Busy { .. }
        | SchedulerError::TooManyWorkers { .. }
        | SchedulerError::TooManySharedWorkers { .. } => Status::resource_exhausted(message),
        SchedulerError::Stopped => Status::unavailable(message),
        SchedulerError::Store(_)
        | SchedulerError::CheckpointIo { .. }
        | SchedulerError::Crashed => {
            tracing::error!(error = %message, "store failure");
            Status::internal(message)
        }
    }
}

impl From<SchedulerError> for Status {
    fn from(e: SchedulerError) -> Self {
        status_of(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn load_shedding_and_stopping_have_their_own_codes() {
        let busy = status_of(&SchedulerError::Busy { limit: 7 });
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert!(busy.message().contains("--max-queued-calls"), "{busy:?}");
        let full = status_of(&SchedulerError::TooManyWorkers { limit: 3 });
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(full.message().contains("--max-workers"), "{full:?}");
        assert_eq!(
            status_of(&SchedulerError::Stopped).code(),
            Code::Unavailable
        );
        assert_eq!(status_of(&SchedulerError::Crashed).code(), Code::Internal);
    }
}
