//! The figures of a report, computed from plain job records and nothing of
//! how they are shown. Layers, bottom to top: [`metric`], [`configurations`],
//! [`jobs`], [`silent`], [`early_stop`], [`environments`] and [`verification`] → [`groups`], [`usage`] →
//! [`compare`] → [`report`] (the [`report::Report`] value and
//! [`report::build_report`]).

pub mod compare;
pub mod configurations;
pub mod early_stop;
pub mod environments;
pub mod groups;
pub mod jobs;
pub mod metric;
pub mod report;
pub mod silent;
pub mod usage;
pub mod verification;
