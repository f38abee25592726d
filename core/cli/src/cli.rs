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
    /// List activation plugins and check their fused kernels.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Run a suite (models x activations x optimisers x seeds) into its
    /// ledger, then report it beside the paper. Finished runs are skipped.
    Suite(Box<SuiteArgs>),
    /// Render the tables, exports and plots of a suite's output folder.
    Report(ReportArgs),
    /// Fold the ledgers of a suite's shards (`OUT/shards/*.sqlite`, written
    /// by `suite --shard` or `--slurm`) into `OUT/ledger.sqlite`. Runs
    /// already there are skipped; the same run with different results in
    /// two files is an error naming both. Safe to run again.
    Merge(MergeArgs),
    /// Send a suite's runs to another tool.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Inspect a suite's results ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Evaluate object detections.
    #[command(subcommand)]
    Detect(DetectCommand),
    /// Run a rhai sweep script: a study that decides as it goes which runs
    /// to train. Runs are memoized in the sweep's ledger.
    Sweep(Box<SweepArgs>),
    /// Train fixed models for a fixed number of batches on Fashion-MNIST,
    /// with acbench and with a PyTorch reference of the identical model,
    /// and compare images per second and peak memory. Both sides use
    /// `--threads` threads (2 unless given).
    Bench(Box<BenchArgs>),
    /// One acbench measurement of `acbench bench`, in a process of its own
    /// so that its peak memory is its own (internal).
    #[command(hide = true)]
    BenchWorker(Box<BenchWorkerArgs>),
}

/// `acbench bench`.
#[derive(Debug, Args)]
#[command(after_help = BENCH_AFTER_HELP)]
pub struct BenchArgs {
    /// Model: a shipped benchmark model or a path to any `.acnet` file
    /// (repeatable; default: the three small ones). Small, 1 channel at their
    /// own size: `convnet` (28x28), `vgg-small`, `resnet20` (32x32). The
    /// paper's models, 3 channels: `alexnet`, `vgg`, `vgg-v`, `googlenet`,
    /// `resnet`, `densenet` at 32x32 and `resnet50` at 84x84. `small` and
    /// `paper` name those groups. Fashion-MNIST's 28x28 grey images are
    /// zero-padded (centred) to the model's size and the grey channel is
    /// replicated to its channels, identically on both sides.
    #[arg(long = "model", value_name = "NAME|FILE")]
    pub models: Vec<String>,

    /// Activation binding of every act slot, as `train --act`; several specs
    /// separated by spaces make one binding (`"arelu fc=relu"`). Repeatable;
    /// added to `--acts`. Without either: `--acts all`.
    #[arg(long = "act", value_name = "SPEC")]
    pub acts: Vec<String>,

    /// A set of activations: `all` (relu, arelu, tanh, sigmoid, swish, atanh,
    /// asigmoid: fixed and adaptive, piecewise linear and smooth; the
    /// default), `piecewise` (relu, arelu) or `smooth` (tanh, sigmoid,
    /// swish, atanh, asigmoid).
    #[arg(long = "acts", value_enum, value_name = "SET")]
    pub act_set: Option<BenchActSet>,

    /// Timed training batches per measurement [default: 40; 5 with --quick].
    #[arg(long, value_name = "N")]
    pub batches: Option<usize>,

    /// Untimed training batches before the timed ones [default: 5; 1 with
    /// --quick].
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,

    /// Images per batch.
    #[arg(long, alias = "batch", default_value_t = 64, value_name = "N")]
    pub batch_size: usize,

    /// SGD learning rate (both sides).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,

    /// Measure each model and activation this many times, alternating acbench
    /// and PyTorch, and report the median of each [default: 1].
    #[arg(long, value_name = "R")]
    pub repeats: Option<usize>,

    /// A quick look, e.g. to check a set-up: 5 timed batches after 1 warm-up
    /// batch, one run each, the three small models; `--batches`,
    /// `--warmup`, `--repeats` and `--model` still win. Too short for
    /// figures worth quoting.
    #[arg(long)]
    pub quick: bool,

    /// Seed of acbench's initial weights and of PyTorch's.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// The python of the PyTorch venv (default: $ACBENCH_TORCH_PYTHON, else
    /// ~/.cache/acbench/torch-venv/bin/python, which bench/setup-pytorch.sh
    /// creates). The torch version is that venv's: `ACBENCH_TORCH_VERSION=X
    /// bench/setup-pytorch.sh` rebuilds it with torch X (default 2.15.0).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Measure acbench only.
    #[arg(long)]
    pub no_pytorch: bool,

    /// Write the rows (model, activation, img/s, ratio, peak RSS) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Extra place to look for Fashion-MNIST (before $ACBENCH_DATA and the cache).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(flatten)]
    pub activations: ActivationArgs,
}

/// What `acbench bench --help` says after the options.
const BENCH_AFTER_HELP: &str = "\
Data: the first (warmup + batches) x batch-size Fashion-MNIST training images, \
standardised per image, zero-padded (centred) to the model's input size and, for \
3-channel models, the grey channel copied into all three, identically on both \
sides.
PyTorch: `bench/setup-pytorch.sh` makes a CPU torch venv in ~/.cache/acbench/torch-venv \
(torch 2.15.0 unless ACBENCH_TORCH_VERSION says otherwise; `pip index versions torch` \
lists them; a venv of another version is rebuilt). Peak RSS is each measuring \
process's own (its VmHWM).";

/// `acbench bench --acts`: named sets of activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchActSet {
    /// Piecewise linear and smooth, fixed and adaptive.
    All,
    /// relu, arelu.
    Piecewise,
    /// tanh, sigmoid, swish, atanh, asigmoid.
    Smooth,
}

/// `acbench bench-worker`: what one acbench measurement needs.
#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    /// Model name or `.acnet` path, as `bench --model`.
    #[arg(long)]
    pub model: String,

    /// Activation binding, as `bench --act`.
    #[arg(long)]
    pub act: String,

    /// Timed batches.
    #[arg(long)]
    pub batches: usize,

    /// Untimed batches first.
    #[arg(long)]
    pub warmup: usize,

    /// Images per batch.
    #[arg(long)]
    pub batch_size: usize,

    /// SGD learning rate.
    #[arg(long)]
    pub lr: f64,

    /// Seed of the initial weights.
    #[arg(long)]
    pub seed: u64,

    /// The folder holding Fashion-MNIST's IDX files.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub activations: ActivationArgs,
}

/// `acbench sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep script (`suites/halving.rhai`).
    pub file: PathBuf,

    /// A folder the script may read files from besides its own
    /// (repeatable): model and suite files, datasets given by path.
    #[arg(long, value_name = "DIR")]
    pub allow_read: Vec<PathBuf>,

    /// Output folder (ledger, exports, plots); default `results/sweeps/NAME`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// A constant for the script, e.g. `--set quick=true` (repeatable; values are YAML).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,

    /// Train every run again, even those the ledger has finished.
    #[arg(long)]
    pub rerun: bool,

    #[command(flatten)]
    pub activations: ActivationArgs,

    #[command(flatten)]
    pub env: TrainEnvArgs,

    /// Stop the script after this many seconds (checked between script
    /// operations and before each new training run).
    #[arg(long, alias = "timeout", value_name = "SECONDS")]
    pub max_seconds: Option<f64>,

    /// Script operations allowed in all (a training run counts as one).
    #[arg(long, value_name = "N")]
    pub max_operations: Option<u64>,
}

/// `acbench suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The suite file (`suites/quickstart.yaml`).
    pub file: PathBuf,

    /// Print the run matrix, the estimated wall time on this machine and
    /// the disk the ledger and checkpoints take, without training (a few
    /// batches of each network are timed; timings are cached).
    #[arg(long)]
    pub dry_run: bool,

    /// With `--dry-run`: time the networks again instead of using cached timings.
    #[arg(long, requires = "dry_run")]
    pub recalibrate: bool,

    /// With `--dry-run`: only the run matrix, no timing and no estimate.
    #[arg(long, requires = "dry_run", conflicts_with = "recalibrate")]
    pub no_estimate: bool,

    /// Override a suite field, e.g. `--set epochs=1`, `--set dataset.limit_train=1000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// Output folder (ledger, exports, plots); overrides the suite's `out`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Train every run again, even those the ledger has finished.
    #[arg(long)]
    pub rerun: bool,

    /// Keep each run's last checkpoint (`OUT/checkpoints/KEY/`) when it
    /// ends; by default a run's checkpoint is deleted once it finishes.
    #[arg(long)]
    pub keep_checkpoints: bool,

    /// Load the plugin libraries the suite file names under `plugins:`. A
    /// plugin is native code: a suite file from someone else cannot run it
    /// unless you say so here (or the library is on $ACBENCH_PLUGIN_PATH
    /// already).
    #[arg(long)]
    pub allow_plugins: bool,

    #[command(flatten)]
    pub activations: ActivationArgs,

    #[command(flatten)]
    pub env: TrainEnvArgs,

    /// Skip the SVG plots of the final report.
    #[arg(long)]
    pub no_plots: bool,

    /// Run only shard I of N (`0/4`, from 0): the runs at positions I,
    /// I+N, ... of the plan, into a ledger file of their own under
    /// `OUT/shards/` (merge them with `acbench merge OUT`). Works under any
    /// scheduler: a Slurm array, a Kubernetes Indexed Job, a shell loop.
    #[arg(long, value_name = "I/N", conflicts_with_all = ["dry_run", "slurm", "rerun"])]
    pub shard: Option<String>,

    /// With `--shard`: the plan file to slice (`--slurm` writes one under
    /// `OUT/slurm/`); default: every run of the suite, by key.
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub plan: Option<PathBuf>,

    /// With `--shard`, inside a Slurm job: after SIGUSR1 (Slurm's warning
    /// before the time limit), requeue the job (`scontrol requeue
    /// $SLURM_JOB_ID`) so that it resumes where it stopped.
    #[arg(long, requires = "shard")]
    pub requeue: bool,

    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `acbench suite --slurm` and its settings.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Submit the runs not yet in the ledger to Slurm: one job array of
    /// shards and a job that merges and reports once they all end. With
    /// `--dry-run`, write the plan and sbatch scripts under `OUT/slurm/`
    /// and submit nothing.
    #[arg(long, conflicts_with = "rerun")]
    pub slurm: bool,

    /// Slurm partition (`sbatch --partition`).
    #[arg(long, value_name = "P", requires = "slurm")]
    pub partition: Option<String>,

    /// Time limit of each shard (`sbatch --time`, e.g. `4:00:00`).
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,

    /// Generic resources of each shard (`sbatch --gres`, e.g. `gpu:1` with
    /// a CUDA build and `--device cuda`).
    #[arg(long, value_name = "G", requires = "slurm")]
    pub gres: Option<String>,

    /// Array tasks to spread the runs over [default: one per run], capped
    /// by the runs and by the cluster's MaxArraySize.
    #[arg(long, value_name = "N", requires = "slurm")]
    pub shards: Option<usize>,

    /// At most K shards running at once (the array's `%K`).
    #[arg(long, value_name = "K", requires = "slurm")]
    pub parallel: Option<usize>,

    /// Seconds before the time limit that Slurm signals a shard (USR1), so
    /// that it stops cleanly and requeues itself.
    #[arg(long, value_name = "S", default_value_t = 300, requires = "slurm")]
    pub signal_before: u64,

    /// Another sbatch option for the shards (repeatable), e.g.
    /// `--sbatch-arg=--mem=8G` or `--sbatch-arg=--account=lab`.
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "slurm"
    )]
    pub sbatch_args: Vec<String>,
}

/// `acbench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// A suite's output folder.
    pub dir: PathBuf,
}

/// `acbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A suite's output folder (holds `ledger.sqlite` and `suite.json`).
    pub dir: PathBuf,

    /// Skip the SVG plots.
    #[arg(long)]
    pub no_plots: bool,
}

/// `acbench export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Send every run of an output folder's ledger to an MLflow tracking
    /// server: one MLflow run per ledger run, with its resolved spec as
    /// parameters, its epochs as metrics and the folder's `report.*` files
    /// as artifacts. Runs already exported are skipped.
    Mlflow(MlflowArgs),
}

/// `acbench export mlflow`.
#[derive(Debug, Args)]
pub struct MlflowArgs {
    /// A suite's or sweep's output folder (holds `ledger.sqlite`).
    pub dir: PathBuf,

    /// The MLflow tracking server, e.g. `http://127.0.0.1:5000`
    /// ($MLFLOW_TRACKING_TOKEN, if set, is sent as a bearer token).
    #[arg(long, value_name = "URL")]
    pub uri: String,

    /// The experiment to log into, created if missing [default: the runs'
    /// suite name, else `acbench`].
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
}

/// `acbench ledger`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check a ledger without changing it: SQLite's full integrity check,
    /// then its runs by status and its epochs. Exits 1 when the file is
    /// damaged (acbench refuses to write into a damaged ledger, rather than
    /// take it for an empty one and train everything again).
    Check(LedgerCheckArgs),
}

/// `acbench ledger check`.
#[derive(Debug, Args)]
pub struct LedgerCheckArgs {
    /// A suite's output folder (its `ledger.sqlite`), or a ledger file (a
    /// shard's).
    #[arg(value_name = "OUT")]
    pub path: PathBuf,
}

/// `acbench detect`.
#[derive(Debug, Subcommand)]
pub enum DetectCommand {
    /// Score a COCO results file against a COCO ground truth: the twelve box
    /// numbers of pycocotools' `summarize` (AP, AP50, AP75, AP_small,
    /// AP_medium, AP_large, AR1, AR10, AR100, AR_small, AR_medium,
    /// AR_large), printed as pycocotools prints them; -1 where nothing is
    /// measured. With `--voc07`/`--voc12`, PASCAL VOC AP50 per class too.
    Eval(DetectEvalArgs),
}

/// `acbench detect eval`.
#[derive(Debug, Args)]
pub struct DetectEvalArgs {
    /// The ground truth: a COCO `instances_*.json` (images, annotations with
    /// id, image_id, category_id, bbox, area and iscrowd, categories).
    #[arg(long, value_name = "FILE")]
    pub gt: PathBuf,

    /// The detections: a COCO results file, a list of `{image_id,
    /// category_id, bbox, score}` on the ground truth's images and
    /// categories.
    #[arg(long, value_name = "FILE")]
    pub dt: PathBuf,

    /// Also write the numbers as JSON: `{"ap": ..., "ap50": ..., ...,
    /// "ar_large": ...}`, and `voc07`/`voc12` when asked for.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also print PASCAL VOC2007 AP50 per class (11-point rule) and their
    /// mean. Annotations marked `difficult` (else `ignore`) or `iscrowd`
    /// are difficult: neither positives nor false positives.
    #[arg(long)]
    pub voc07: bool,

    /// Also print PASCAL VOC2010+ AP50 per class (all-point rule) and their
    /// mean; difficult as for `--voc07`.
    #[arg(long)]
    pub voc12: bool,
}

/// Which activation plugins to load besides the shipped ones (linked in).
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// An activation plugin library to load (repeatable); also
    /// $ACBENCH_PLUGIN_PATH (files or directories, `:`-separated).
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

/// The activations a training command can use: the shipped ones, plugins,
/// and whether their fused kernels run.
#[derive(Debug, Args)]
pub struct ActivationArgs {
    #[command(flatten)]
    pub plugins: PluginArgs,

    /// Compute activations through their formulas even where a plugin has
    /// fused kernels (for checks and speed comparisons).
    #[arg(long)]
    pub no_fused: bool,
}

/// Where runs find their data and what they train on.
#[derive(Debug, Args)]
pub struct TrainEnvArgs {
    /// Extra place to look for datasets (before $ACBENCH_DATA and the cache).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Device to train on.
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    pub device: DeviceName,
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

    #[command(flatten)]
    pub activations: ActivationArgs,

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

    /// The detector that reads the network's output, for a detection
    /// dataset (`fashion-mnist-boxes`): its name, optionally with settings,
    /// `fcos` or `fcos:radius=2,prior=0.02` (`acbench plugins list` shows
    /// them).
    #[arg(long, value_name = "SPEC")]
    pub detector: Option<String>,

    /// Seed of a generated detection set (the runs' `--seed` stays apart,
    /// so that every run sees the same data).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub data_seed: u64,
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
        #[command(flatten)]
        plugins: PluginArgs,
    },
}

/// `acbench plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every activation: parameters, tier (formula or formula+fused), plugin file.
    List {
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// Compare fused kernels with the formula (values and gradients) and the
    /// formula's gradients with finite differences; fails on a mismatch.
    Check {
        /// Check only this activation (default: all).
        name: Option<String>,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        plugins: PluginArgs,
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
