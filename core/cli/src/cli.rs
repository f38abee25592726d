//! Command-line arguments (clap derive). Raw flags live here; each command
//! resolves them into the engine's validated configuration types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Benchmark neural-network activation functions.
#[derive(Debug, Parser)]
#[command(name = "acbench", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads for tensor operations (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model with one activation binding and report per-epoch metrics.
    Train(Box<TrainArgs>),
    /// Inspect `.acnet` model files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// List, locate and download datasets.
    #[command(subcommand)]
    Data(DataCommand),
}

/// Which model file, network and network arguments to use.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A `.acnet` model file.
    #[arg(long = "model", value_name = "FILE")]
    pub file: PathBuf,

    /// Network to build when the file defines several (default: the last one).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// Network argument, e.g. `--arg classes=100` (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

/// `acbench train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Activation binding (repeatable): `arelu` binds every slot, `fc=relu`
    /// the slot `act@fc`; `lrelu:s=0.2` overrides an initial value.
    #[arg(long = "act", value_name = "SPEC", required = true)]
    pub acts: Vec<String>,

    /// Dataset name (`acbench data list`), or `folder:PATH`.
    #[arg(long, value_name = "NAME")]
    pub dataset: String,

    /// Extra place to look for datasets (before $ACBENCH_DATA and the cache).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Image size HxW for image-folder datasets, e.g. `84x84`.
    #[arg(long, value_name = "HxW")]
    pub image_size: Option<String>,

    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,

    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,

    /// Batch size for evaluation on the test set.
    #[arg(long, default_value_t = 500)]
    pub eval_batch: usize,

    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerName::Sgd)]
    pub optimizer: OptimizerName,

    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,

    /// Momentum coefficient (for `--optimizer momentum`).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,

    /// L2 weight decay on convolution and linear weights (never on activation parameters).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,

    /// Learning-rate schedule: `constant`, `step:70,100` (divide by 10 at
    /// those epochs, as the paper), or `cosine`.
    #[arg(long, default_value = "constant", value_name = "SCHEDULE")]
    pub schedule: String,

    /// Input normalisation.
    #[arg(long, value_enum, default_value_t = NormName::PerImage)]
    pub norm: NormName,

    /// Augment training images with random crops (4 px padding) and horizontal flips.
    #[arg(long)]
    pub augment: bool,

    /// Seed of every random draw (initial weights, shuffling, dropout, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Use only the first N training examples.
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,

    /// Use only the first N test examples.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,

    /// Device to train on.
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    pub device: DeviceName,

    /// Write the result (config, per-epoch metrics, activation parameters) as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Optimisers of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with momentum (TensorFlow's MomentumOptimizer).
    Momentum,
    /// AdaGrad.
    Adagrad,
    /// AdaDelta.
    Adadelta,
    /// Adam.
    Adam,
}

/// Input normalisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormName {
    /// Each image standardised on its own (TensorFlow's per_image_standardization; the paper's code).
    PerImage,
    /// Per-channel mean and standard deviation of the training split.
    PerChannel,
    /// Pixels divided by 255.
    Unit,
}

/// Devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceName {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// `acbench model ...`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a model's layers, output shapes and parameter counts.
    Show {
        /// A `.acnet` model file.
        file: PathBuf,
        /// Network to show when the file defines several (default: the last one).
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
        /// Network argument, e.g. `--arg classes=100` (repeatable).
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// Also count the parameters of these activation bindings (as for `train`).
        #[arg(long = "act", value_name = "SPEC")]
        acts: Vec<String>,
    },
}

/// `acbench data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// List known datasets and where each was found.
    List {
        /// Extra place to look (before $ACBENCH_DATA and the cache).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Download a dataset's official archive, verify its checksum and unpack it.
    Fetch {
        /// Dataset name.
        name: String,
        /// Where to put it (default: $ACBENCH_DATA, else the user cache dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Base URL to download from instead of the official host (also $ACBENCH_MIRROR).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
}
