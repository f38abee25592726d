//! What a caller decides for a whole compile: defaults the model file does
//! not spell out.

/// Defaults of layer arguments a model file leaves out, chosen by the
/// caller (acbench's training preset) rather than by the language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompileOptions {
    /// Momentum of the running statistics of every `bn` that does not set
    /// `momentum` (`running = momentum * running + (1 - momentum) * batch`).
    /// [`CompileOptions::default`] has TensorFlow's 0.99, what the paper's
    /// code uses; PyTorch's default `momentum=0.1` is 0.9 here.
    pub bn_momentum: f64,
}

impl CompileOptions {
    /// TensorFlow's running-statistics momentum, the paper's code's.
    pub const TF_BN_MOMENTUM: f64 = 0.99;
    /// PyTorch's (its `momentum=0.1` weighs the new batch, so 0.9 here).
    pub const TORCH_BN_MOMENTUM: f64 = 0.9;
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            bn_momentum: Self::TF_BN_MOMENTUM,
        }
    }
}
