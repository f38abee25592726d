//! The raw C ABI between acbench (the host) and a detector plugin.
//!
//! A detector plugin turns a network's dense head output into training
//! signal and boxes. The network itself (backbone with its `act` slots, head
//! convolutions ending in one tensor of `channels` values per location) is
//! an `.acnet` file; the host owns the data, the weights, non-maximum
//! suppression and evaluation. The plugin provides, over contiguous `f32`
//! buffers:
//!
//! - [`DetectorDesc::layout`]: how many head channels and dense target
//!   values per location it needs for a number of classes;
//! - [`DetectorDesc::init_bias`]: the initial bias of the head's last
//!   convolution (FCOS's `-log(99)` for the class logits);
//! - [`DetectorDesc::assign`]: ground-truth boxes plus the head's grid in,
//!   dense targets and masks out;
//! - [`DetectorDesc::loss`]: the loss terms, plus the gradient of their sum
//!   with respect to the head's output;
//! - [`DetectorDesc::decode`]: scored boxes out.
//!
//! The style is the activation ABI's ([`crate::abi`]): a library exports one
//! symbol, [`DETECTOR_ENTRY_SYMBOL`], returning a `#[repr(C)]`
//! [`DetectorTable`] whose first two fields are its version and size; only
//! plain C types cross; every function returns a `STATUS_*` code
//! ([`crate::abi::STATUS_OK`], [`crate::abi::STATUS_ERROR`],
//! [`crate::abi::STATUS_PANIC`]) and explains a failure through
//! [`DetectorTable::last_error`]. One library may export activations,
//! detectors or both.
//!
//! Every buffer is laid out as the host's tensors: the head output is
//! `[N, channels, H, W]` and the targets `[N, target_channels, H, W]`,
//! row-major. Boxes are `[x, y, w, h]` in input pixels with continuous
//! coordinates (the top-left pixel covers `[0, 1) x [0, 1)`). Functions are
//! called from several threads at once, on different buffers: a detector
//! keeps no state between calls.
//!
//! Plugin authors do not write these structs by hand:
//! `export_detectors!` builds them from safe Rust.

use std::ffi::c_char;

/// Version of this ABI; bumped on any change of the structs or of the
/// meaning of a field.
pub const DETECTOR_ABI_VERSION: u32 = 1;

/// The symbol a detector library exports, of type [`DetectorEntryFn`].
pub const DETECTOR_ENTRY_SYMBOL: &str = "acbench_detector_entry";

/// Returns the library's detector table; called once per load. Must not
/// unwind. A null table is explained by the library's
/// [`crate::abi::LAST_ERROR_SYMBOL`] when it exports one.
pub type DetectorEntryFn = unsafe extern "C" fn() -> *const DetectorTable;

/// [`Truth::flags`] bit: a crowd region (COCO `iscrowd`); detections there
/// are neither rewarded nor penalised.
pub const FLAG_CROWD: u32 = 1;
/// [`Truth::flags`] bit: a difficult object (PASCAL VOC); treated like a
/// crowd region.
pub const FLAG_DIFFICULT: u32 = 2;

/// What a detector library offers.
#[repr(C)]
#[derive(Debug)]
pub struct DetectorTable {
    /// Must equal the host's [`DETECTOR_ABI_VERSION`]. Always the first field.
    pub abi_version: u32,
    /// `size_of::<DetectorTable>()` as the plugin was compiled. Always the
    /// second field.
    pub struct_size: u32,
    /// `size_of::<DetectorDesc>()` as the plugin was compiled.
    pub detector_desc_size: u32,
    /// `size_of::<SettingDesc>()` as the plugin was compiled.
    pub setting_desc_size: u32,
    /// Number of entries in `detectors`.
    pub detector_count: usize,
    /// The detectors this library exports.
    pub detectors: *const DetectorDesc,
    /// Copies the message of the last error raised on the calling thread
    /// into `buf` as NUL-terminated UTF-8, truncated to `cap` bytes
    /// including the NUL; returns the length of the whole message (without
    /// NUL). Must not unwind.
    pub last_error: unsafe extern "C" fn(buf: *mut c_char, cap: usize) -> usize,
}

/// One detector.
#[repr(C)]
#[derive(Debug)]
pub struct DetectorDesc {
    /// Unique name, NUL-terminated UTF-8 (`fcos`).
    pub name: *const c_char,
    /// One-line description, NUL-terminated UTF-8.
    pub summary: *const c_char,
    /// Number of entries in `settings`.
    pub setting_count: usize,
    /// The detector's hyper-parameters (fixed during a run; a suite may
    /// override their defaults), in the order [`Config::settings`] holds
    /// them.
    pub settings: *const SettingDesc,
    /// Number of entries in `terms`.
    pub term_count: usize,
    /// Names of the loss terms (`cls`, `box`, `ctr`), NUL-terminated UTF-8,
    /// in the order [`LossFn`] writes them. The training loss is their sum.
    pub terms: *const *const c_char,
    /// Head channels and target values per location.
    pub layout: LayoutFn,
    /// Initial bias of the head's last convolution.
    pub init_bias: InitBiasFn,
    /// Dense targets from ground-truth boxes.
    pub assign: AssignFn,
    /// Loss terms and the gradient with respect to the head output.
    pub loss: LossFn,
    /// Scored boxes from the head output.
    pub decode: DecodeFn,
}

/// One hyper-parameter of a detector.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SettingDesc {
    /// Name, NUL-terminated UTF-8 (`radius`).
    pub name: *const c_char,
    /// One-line description, NUL-terminated UTF-8.
    pub summary: *const c_char,
    /// Value when the suite does not set it.
    pub default: f64,
}

/// What every call receives: the number of classes and the settings.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Object classes (not counting background).
    pub classes: usize,
    /// Number of values in `settings`; equals [`DetectorDesc::setting_count`].
    pub setting_count: usize,
    /// The settings' values, in [`DetectorDesc::settings`] order.
    pub settings: *const f64,
}

/// The geometry of a batch of head outputs.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Images in the batch (`N`).
    pub batch: usize,
    /// Rows of the head's output map (`H`).
    pub height: usize,
    /// Columns of the head's output map (`W`).
    pub width: usize,
    /// Height of the network's input in pixels; the stride is
    /// `image_height / height`.
    pub image_height: usize,
    /// Width of the network's input in pixels.
    pub image_width: usize,
}

impl Grid {
    /// The strides in input pixels, `(x, y)`: `image_width / width` and
    /// `image_height / height`.
    pub fn strides(&self) -> (f64, f64) {
        (
            self.image_width as f64 / self.width as f64,
            self.image_height as f64 / self.height as f64,
        )
    }
}

/// Per-location sizes a detector needs for a [`Config`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadLayout {
    /// Channels of the head output per location: the network's last layer
    /// must produce this many.
    pub channels: usize,
    /// Dense target values per location that [`AssignFn`] writes and
    /// [`LossFn`] reads (targets and masks, in the detector's own order).
    pub target_channels: usize,
}

/// The ground truth of a batch: `offsets[i]..offsets[i + 1]` are image
/// `i`'s boxes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Truth {
    /// `offsets[grid.batch]` boxes, 4 values each: `[x, y, w, h]` in input
    /// pixels.
    pub boxes: *const f32,
    /// The class of each box, below [`Config::classes`].
    pub classes: *const u32,
    /// [`FLAG_CROWD`] and [`FLAG_DIFFICULT`] bits of each box.
    pub flags: *const u32,
    /// `grid.batch + 1` non-decreasing offsets, starting at 0.
    pub offsets: *const usize,
}

/// Writes `layout` for `config`. Returns a `STATUS_*` code (an error for a
/// setting out of range, for example).
pub type LayoutFn = unsafe extern "C" fn(config: *const Config, layout: *mut HeadLayout) -> i32;

/// Writes the initial bias of the head's last convolution: `channels`
/// values (as [`LayoutFn`] gave), NaN for "keep the host's initialisation".
pub type InitBiasFn = unsafe extern "C" fn(config: *const Config, bias: *mut f32) -> i32;

/// Writes the dense targets of a batch: `grid.batch * target_channels *
/// grid.height * grid.width` values, laid out `[N, T, H, W]`, every one of
/// them (the host does not clear the buffer).
pub type AssignFn = unsafe extern "C" fn(
    config: *const Config,
    grid: Grid,
    truth: *const Truth,
    targets: *mut f32,
) -> i32;

/// The loss of a batch: writes the `term_count` terms into `terms` (the
/// loss is their sum, already normalised as the detector defines it, e.g.
/// by the batch's foreground locations) and, when `grad` is not null, the
/// gradient of that sum with respect to `head` (`[N, channels, H, W]`, every
/// value written).
pub type LossFn = unsafe extern "C" fn(
    config: *const Config,
    grid: Grid,
    head: *const f32,
    targets: *const f32,
    terms: *mut f32,
    grad: *mut f32,
) -> i32;

/// Scored boxes of a batch, before non-maximum suppression: for image `i`,
/// writes up to `capacity` rows of [`DECODED_WIDTH`] values `[x, y, w, h,
/// score, class]` at `out[i * capacity * DECODED_WIDTH..]` and their number
/// into `counts[i]`. Only boxes scoring at least `score_threshold`; when
/// more qualify, the `capacity` best by score (ties by location order).
/// Boxes are in input pixels and may extend past the image (the host clips
/// them).
pub type DecodeFn = unsafe extern "C" fn(
    config: *const Config,
    grid: Grid,
    head: *const f32,
    score_threshold: f32,
    capacity: usize,
    out: *mut f32,
    counts: *mut usize,
) -> i32;

/// Values per decoded box: `[x, y, w, h, score, class]`.
pub const DECODED_WIDTH: usize = 6;
