//! Limits on elaboration, so that hostile input cannot exhaust time or
//! memory (the parser's own limits live in `syntax.rs`).

/// Most nodes (layers and composites) in one network.
pub const MAX_NODES: usize = 100_000;
/// Most elaboration steps (statements visited, loop iterations); bounds the
/// time spent on loops that produce nothing, such as nested empty `repeat`s.
pub const MAX_STEPS: usize = 2_000_000;
/// Deepest chain of block calls.
pub const MAX_CALL_DEPTH: usize = 64;
/// Largest channel count, spatial size, kernel, stride, padding or repeat count.
pub const MAX_DIM: usize = 1 << 24;
/// Most scalars in one example's activation (`c*h*w`).
pub const MAX_NUMEL: usize = 1 << 40;
/// Most trainable scalars in one layer.
pub const MAX_LAYER_PARAMS: usize = 1 << 40;
/// Most trainable scalars in one network.
pub const MAX_TOTAL_PARAMS: usize = 1 << 50;
/// Most bytes in all node paths together: long names nested deep in many
/// nodes could otherwise take gigabytes.
pub const MAX_PATH_BYTES: usize = 64 << 20;
