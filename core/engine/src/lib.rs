//! acbench's engine: turns an elaborated `.acnet` network ([`acbench_dsl::ir`])
//! into candle tensors, binds activation functions to its `act` slots, and
//! trains it with the paper's optimisers on a dataset from `acbench-data`.

pub mod activation;
pub mod checkpoint;
pub mod detection;
pub mod error;
pub mod memory;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod plugin;
pub mod rng;
pub mod schedule;
pub mod train;

pub use error::{Error, Result};
