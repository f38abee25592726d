//! Detector plugins: the raw C ABI ([`abi`]) a detector library exports.

pub mod abi;
