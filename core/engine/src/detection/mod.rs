//! Training and scoring detectors: a network whose output is a dense head
//! (`[N, channels, H, W]`), a detector plugin that turns it into a loss and
//! boxes, and the host's non-maximum suppression and evaluation.

mod metrics;

pub use metrics::DetectionMetrics;
