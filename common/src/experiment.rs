//! The experiment layer: what one TOML file asks for and what it expands to.
//!
//! From the bottom up: [`error`] (what goes wrong, the size bounds),
//! [`verify`] (`[protocol] verify` and its sampling rule) and
//! [`sections`] (`[data]`, `[protocol]`, `[simulation]`, `[training]`) and
//! [`trainer`] (`[trainer]`: which training script runs the jobs); then
//! [`network`] (`[network]`'s block lists), [`prune`] and [`sweep`] (`[sweep]`,
//! read with its pruning settings);
//! then [`config`] (the whole file: load and validation) and
//! [`network_yaml`] (the reference's `network.yaml` imported); at the top
//! [`configurations`] (a sweep's rows applied to the experiment), [`cv`]
//! (scikit-learn's folds), [`plan`] (jobs and their ids), [`job`] (what a job
//! reports), [`manifest`] (what it ran on and with), [`replay`] (two runs
//! compared) and [`metrics`] (the names its figures go by in TensorBoard,
//! MLflow and the dashboard). Each imports only what is listed before it.

pub mod error;
pub mod sections;
pub mod trainer;
pub mod verify;

pub mod network;
pub mod prune;
pub mod sweep;

pub mod config;
pub mod network_yaml;

pub mod configurations;
pub mod cv;
pub mod job;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod replay;
