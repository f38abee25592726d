//! Detector plugins: the raw C ABI ([`abi`]) a detector library exports,
//! and the safe way to write one: implement [`DetectorKernel`] ([`kernel`]),
//! wrap it in a [`Detector`] and export it with
//! [`export_detectors!`](crate::export_detectors) from a `cdylib`, or link it
//! into a host with [`linked_detectors!`](crate::linked_detectors)
//! ([`export`]). [`losses`] holds the shared loss terms with their gradients; [`testing`] has the checks for a detector's unit tests.
//!
//! A library that exports activations too calls
//! [`export_plugin!`](crate::export_plugin) for them and
//! `export_detectors!(@entry detectors)` for its detectors, so that the
//! shared `acbench_plugin_last_error` is defined once.

pub mod abi;
pub mod export;
pub mod kernel;
pub mod losses;
pub mod testing;

pub use export::{Detector, LinkedDetectors};
pub use kernel::{Candidate, DetectorDef, DetectorKernel, ImageTruth, SettingSpec, Settings};
