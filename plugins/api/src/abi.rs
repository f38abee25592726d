//! The raw C ABI between acbench (the host) and an activation plugin.
//!
//! Rust has no stable ABI, and candle tensors must never cross a library
//! boundary, so a plugin is a `cdylib` that exports one symbol,
//! [`ENTRY_SYMBOL`], returning a pointer to a `#[repr(C)]` [`PluginTable`].
//! Only plain C types cross: NUL-terminated UTF-8 strings, numbers, and
//! contiguous `f32` buffers described by a [`Layout`].
//!
//! The host reads [`PluginTable::abi_version`] and [`PluginTable::struct_size`]
//! (the first two fields, whose place never changes) before anything else, and
//! refuses a table whose version differs from [`ABI_VERSION`] or whose sizes
//! differ from its own. Every pointer in the table must stay valid for the
//! life of the process: the host never unloads a plugin.
//!
//! Plugin authors do not write these structs by hand: `export_plugin!` builds
//! them from safe Rust.

use std::ffi::c_char;

/// Version of this ABI; bumped on any change of the structs or of the meaning
/// of a field.
pub const ABI_VERSION: u32 = 1;

/// The one symbol a plugin exports, of type [`EntryFn`].
pub const ENTRY_SYMBOL: &str = "acbench_plugin_entry";

/// Returns the plugin's table; called once per load. Must not unwind.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginTable;

/// A second symbol plugins built with `export_plugin!` export, of type
/// [`LastErrorFn`]: the same function as [`PluginTable::last_error`], for the
/// one failure that has no table: [`ENTRY_SYMBOL`] returning null. Optional:
/// a host must cope with its absence.
pub const LAST_ERROR_SYMBOL: &str = "acbench_plugin_last_error";

/// Copies the calling thread's last error message into `buf`; see
/// [`PluginTable::last_error`].
pub type LastErrorFn = unsafe extern "C" fn(buf: *mut c_char, cap: usize) -> usize;

/// `ParamDesc::scope`: one value per activation slot (per layer).
pub const SCOPE_LAYER: u32 = 0;
/// `ParamDesc::scope`: one value per channel.
pub const SCOPE_CHANNEL: u32 = 1;

/// `ParamDesc::constraint`: unconstrained.
pub const CONSTRAINT_NONE: u32 = 0;
/// `ParamDesc::constraint`: clamped to at least `constraint_min` after each step.
pub const CONSTRAINT_POSITIVE: u32 = 1;

/// Kernel status: success.
pub const STATUS_OK: i32 = 0;
/// Kernel status: the kernel reported an error (message via [`PluginTable::last_error`]).
pub const STATUS_ERROR: i32 = 1;
/// Kernel status: the kernel panicked; the shim caught it (message via `last_error`).
pub const STATUS_PANIC: i32 = 2;

/// What a plugin library offers.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// Must equal the host's [`ABI_VERSION`]. Always the first field.
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin was compiled. Always the second field.
    pub struct_size: u32,
    /// `size_of::<ActivationDesc>()` as the plugin was compiled.
    pub activation_desc_size: u32,
    /// `size_of::<ParamDesc>()` as the plugin was compiled.
    pub param_desc_size: u32,
    /// Number of entries in `activations`.
    pub activation_count: usize,
    /// The activations this library exports (one library may export several).
    pub activations: *const ActivationDesc,
    /// Copies the message of the last error raised on the calling thread
    /// (by a kernel returning a non-zero status) into `buf` as NUL-terminated
    /// UTF-8, truncated to `cap` bytes including the NUL; returns the length
    /// of the whole message (without NUL). Must not unwind.
    pub last_error: unsafe extern "C" fn(buf: *mut c_char, cap: usize) -> usize,
}

/// One activation function.
#[repr(C)]
#[derive(Debug)]
pub struct ActivationDesc {
    /// Unique name, NUL-terminated UTF-8 (`arelu`).
    pub name: *const c_char,
    /// One-line description, NUL-terminated UTF-8.
    pub summary: *const c_char,
    /// The function in acbench's formula language, NUL-terminated UTF-8
    /// (`max(a * x + c, b * x + d)`). Always present: the host uses it on
    /// devices without kernels and to check the kernels.
    pub formula: *const c_char,
    /// Number of entries in `params`.
    pub param_count: usize,
    /// Parameter specs, in the order kernels receive them.
    pub params: *const ParamDesc,
    /// Optional fused CPU forward kernel.
    pub forward: Option<ForwardFn>,
    /// Optional fused CPU backward kernel; present exactly when `forward` is.
    pub backward: Option<BackwardFn>,
}

/// One parameter of an activation.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ParamDesc {
    /// Name used in the formula, NUL-terminated UTF-8.
    pub name: *const c_char,
    /// Initial value.
    pub init: f64,
    /// [`SCOPE_LAYER`] or [`SCOPE_CHANNEL`].
    pub scope: u32,
    /// 1 when learned, 0 for a fixed hyper-parameter.
    pub trainable: u32,
    /// [`CONSTRAINT_NONE`] or [`CONSTRAINT_POSITIVE`].
    pub constraint: u32,
    /// Lower bound for [`CONSTRAINT_POSITIVE`].
    pub constraint_min: f64,
}

/// Shape of the contiguous buffers a kernel works on: element `(o, c, i)`
/// is at `(o * channels + c) * inner + i`. For a feature map `[N, C, H, W]`:
/// `outer = N, channels = C, inner = H * W`; for vectors `[N, F]`:
/// `outer = N, channels = F, inner = 1`. The host may split `outer` into
/// chunks and call a kernel once per chunk, from several threads at once.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Leading (batch) extent.
    pub outer: usize,
    /// Channels: per-channel parameters have this many values.
    pub channels: usize,
    /// Trailing (spatial) extent.
    pub inner: usize,
}

impl Layout {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fused forward: `out[k] = f(x[k]; params)`.
///
/// `params` points to `param_count` pointers, in [`ActivationDesc::params`]
/// order; each points to 1 value ([`SCOPE_LAYER`]) or `layout.channels` values
/// ([`SCOPE_CHANNEL`]). `x` and `out` hold `layout.len()` values and do not
/// overlap. Returns a `STATUS_*` code.
pub type ForwardFn = unsafe extern "C" fn(
    layout: Layout,
    x: *const f32,
    params: *const *const f32,
    out: *mut f32,
) -> i32;

/// Fused backward: given `grad_out = dL/d out`, writes `grad_x = dL/dx`
/// (`layout.len()` values) and, for every parameter, the *total* gradient
/// over the whole buffer into `grad_params[i]` (1 or `layout.channels` values,
/// zeroed by the host beforehand; entries of fixed parameters are ignored).
/// Returns a `STATUS_*` code.
pub type BackwardFn = unsafe extern "C" fn(
    layout: Layout,
    x: *const f32,
    params: *const *const f32,
    grad_out: *const f32,
    grad_x: *mut f32,
    grad_params: *const *mut f32,
) -> i32;
