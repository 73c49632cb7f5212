//! Metrics over time: named series of numbers sampled during an arm's workload, from the
//! guests (a sampler in each guest), from the wire (per-second counts out of a segment's
//! trace) and from a client population (per-second attempts, outcomes, latencies).
//!
//! This module holds the shared shape every source produces and every reader (series checks,
//! the earliest-warning table, the report's plots) consumes. Pure.
//!
//! Architecture invariant: a series' times are seconds since the workload started (the same
//! clock as step and fault times), strictly increasing; a sample that was not taken is absent,
//! never a zero. Readers treat a gap as missing data (`unknown`), not as a value.

pub mod population;

use serde::{Deserialize, Serialize};

mod failure;
pub mod model;
pub mod sampler;
pub mod summary;
pub mod sweep;
pub mod warning;
pub mod wire;

pub use failure::{first_user_failure, FAILURE_METRICS};

/// One sample: `t` seconds since the workload started, value `v`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t: f64,
    pub v: f64,
}

/// Where a series came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum Origin {
    /// The sampler inside this guest.
    Guest(String),
    /// Counted from this segment's trace.
    Wire(String),
    /// The client population of this step.
    Population(String),
}

impl Origin {
    /// The name's first part: the guest, segment or step.
    pub fn name(&self) -> &str {
        match self {
            Origin::Guest(n) | Origin::Wire(n) | Origin::Population(n) => n,
        }
    }
}

/// A named series. Its full name, as case files and the report write it, is
/// `<origin name>.<metric>`: `imap1.load1`, `imap1.procs.imap-login`, `lan.syn`,
/// `storm.timeouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub origin: Origin,
    /// The metric's name within its origin (`load1`, `procs.imap-login`, `syn`).
    pub metric: String,
    /// What one value counts or measures, for axes and tables: `processes`, `per s`, `ms`, `%`.
    pub unit: String,
    /// For gauges with a known ceiling (a process limit): the ceiling, drawn as a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub points: Vec<Point>,
}

impl Series {
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.origin.name(), self.metric)
    }
}

/// Every series of one arm, and the nominal sampling interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmMetrics {
    pub interval_s: f64,
    pub series: Vec<Series>,
}

impl ArmMetrics {
    /// The series of this full name (`imap1.load1`).
    pub fn get(&self, full_name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.full_name() == full_name)
    }
}
