//! Max or average pooling ([`PoolKind`]): a pool block's kind, named by its
//! blocks, its layers and its errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Max or average pooling (PyTorch's `MaxPool2d` / `AvgPool2d`, stride = size,
/// no padding, floor division of the size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// The largest value of each window.
    Max,
    /// The mean of each window.
    Avg,
}

impl PoolKind {
    /// `max` or `avg`, as written in the experiment file.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Avg => "avg",
        }
    }
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
