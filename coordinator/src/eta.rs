//! The one estimate of the time left, shared by `coordinator status` (the
//! scheduler's snapshot, from SQL aggregates) and the dashboard (per
//! experiment, from its job records): the epochs still to train, times the
//! mean epoch time, over the jobs that run side by side.

/// What the estimate is made from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EtaInputs {
    /// Jobs that have not ended (pending, leased or running).
    pub unfinished: u64,
    /// Epochs those jobs still have to train (each job's epochs in total
    /// minus its last reported epoch).
    pub epochs_left: u64,
    /// Sum of the latest epoch times of the running jobs that reported one.
    pub running_epoch_seconds: f64,
    /// How many running jobs reported an epoch.
    pub running: u64,
    /// Mean training time per epoch of the jobs that finished with one.
    pub finished_epoch_seconds: Option<f64>,
    /// Slots of the workers that are not lost.
    pub slots: u64,
}

/// Seconds until every job ended: `epochs_left` × the mean epoch time
/// (running jobs' latest epochs, else finished jobs' time per epoch) over the
/// jobs in parallel (the running ones, else `slots`). `Some(0)` when nothing
/// is left; `None` without a time to go by or anywhere to run.
pub fn eta_seconds(i: &EtaInputs) -> Option<f64> {
    if i.unfinished == 0 {
        return Some(0.0);
    }
    let (per_epoch, parallel) = if i.running > 0 {
        (i.running_epoch_seconds / i.running as f64, i.running)
    } else {
        (i.finished_epoch_seconds?, i.slots)
    };
    (parallel > 0).then(|| i.epochs_left as f64 * per_epoch / parallel as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_left_times_epoch_time_over_parallel_jobs() {
        let none_left = EtaInputs::default();
        assert_eq!(eta_seconds(&none_left), Some(0.0));
        let no_timing = EtaInputs {
            unfinished: 3,
            epochs_left: 30,
            slots: 2,
            ..EtaInputs::default()
        };
        assert_eq!(eta_seconds(&no_timing), None);
        // From finished jobs: 30 epochs × 4 s over 2 slots.
        let finished = EtaInputs {
            finished_epoch_seconds: Some(4.0),
            ..no_timing
        };
        assert_eq!(eta_seconds(&finished), Some(60.0));
        // Running jobs (3 s and 5 s per epoch) win over finished ones.
        let running = EtaInputs {
            running_epoch_seconds: 8.0,
            running: 2,
            ..finished
        };
        assert_eq!(eta_seconds(&running), Some(60.0));
        let nowhere = EtaInputs {
            slots: 0,
            ..finished
        };
        assert_eq!(eta_seconds(&nowhere), None);
    }
}
