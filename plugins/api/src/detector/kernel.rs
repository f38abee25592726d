//! The safe side of a detector plugin: the [`DetectorKernel`] trait an
//! author implements, the views it receives ([`Settings`], [`ImageTruth`],
//! [`Candidate`]), and the `extern "C"` shims that expose it through the
//! raw ABI ([`super::abi`]).
//!
//! The shims check every pointer and length before a slice is made, run the
//! kernel under `catch_unwind`, and turn an `Err` or a panic into a status
//! code and a message for `last_error`. They also own what every detector
//! would otherwise repeat: assignment image by image, and decoding's
//! threshold, ranking and capacity.

use std::cmp::Ordering;
use std::slice;

use super::abi::{Config, DECODED_WIDTH, Grid, HeadLayout, Truth};
use crate::kernel::guarded;

/// What every call receives: the number of classes and the detector's
/// settings, in the order its [`DetectorDef::settings`] declares them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings<'a> {
    /// Object classes (not counting background).
    pub classes: usize,
    values: &'a [f64],
}

impl<'a> Settings<'a> {
    /// Settings from their values (for a kernel's own tests).
    pub fn new(classes: usize, values: &'a [f64]) -> Self {
        Self { classes, values }
    }

    /// Setting number `i` (its position in [`DetectorDef::settings`]).
    ///
    /// # Panics
    /// When `i` is out of range: the host always passes every setting, so
    /// that is a bug in the kernel (the shim turns the panic into an error).
    pub fn get(&self, i: usize) -> f64 {
        self.values[i]
    }

    /// Every value.
    pub fn values(&self) -> &'a [f64] {
        self.values
    }
}

/// One image's ground truth: boxes `[x, y, w, h]` in input pixels, their
/// classes and their [`super::abi::FLAG_CROWD`] /
/// [`super::abi::FLAG_DIFFICULT`] bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageTruth<'a> {
    /// One box per object.
    pub boxes: &'a [[f32; 4]],
    /// The class of each box, below [`Settings::classes`].
    pub classes: &'a [u32],
    /// The flags of each box.
    pub flags: &'a [u32],
}

impl ImageTruth<'_> {
    /// Number of boxes.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Whether the image has no box.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Whether box `i` is a crowd or difficult region, which a detector
    /// neither learns as an object nor penalises as background.
    pub fn is_ignored(&self, i: usize) -> bool {
        self.flags[i] & (super::abi::FLAG_CROWD | super::abi::FLAG_DIFFICULT) != 0
    }
}

/// One scored box a detector proposes, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// `[x, y, w, h]`; may extend past the image (the host clips).
    pub bbox: [f32; 4],
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Class, below [`Settings::classes`].
    pub class: u32,
}

/// One hyper-parameter of a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingSpec {
    /// Name (`radius`): a letter, then letters, digits or `_`.
    pub name: String,
    /// One-line description for `acbench plugins list`.
    pub summary: String,
    /// Value when a suite does not set it.
    pub default: f64,
}

impl SettingSpec {
    /// A setting with its default.
    pub fn new(name: &str, default: f64, summary: &str) -> Self {
        Self {
            name: name.to_owned(),
            summary: summary.to_owned(),
            default,
        }
    }
}

/// What a detector is: name, description and settings (its loss terms are
/// [`DetectorKernel::TERMS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorDef {
    /// Unique name (`fcos`): a letter, then letters, digits, `_` or `-`.
    pub name: String,
    /// One-line description.
    pub summary: String,
    /// Hyper-parameters, in the order [`Settings::get`] indexes them.
    pub settings: Vec<SettingSpec>,
}

/// A detector written in safe Rust. The functions take no `self`: a
/// detector keeps no state between calls, and the host calls it from
/// several threads at once.
///
/// Buffers are laid out as the host's tensors, row-major: the head output of
/// a batch is `[N, channels, H, W]`, the targets `[N, target_channels, H,
/// W]`, and the shims have checked every length against [`Self::layout`]
/// and the [`Grid`] before the call.
pub trait DetectorKernel: 'static {
    /// Names of the loss terms (`cls`, `box`, `ctr`), in the order
    /// [`Self::loss`] writes them; the training loss is their sum. A
    /// constant, so that every loss call knows their number without
    /// building [`Self::def`].
    const TERMS: &'static [&'static str];

    /// The detector's description.
    fn def() -> DetectorDef;

    /// Head channels and target values per location. An `Err` (a setting
    /// out of range, say) stops the run with that message.
    fn layout(settings: Settings<'_>) -> Result<HeadLayout, String>;

    /// The initial bias of the head's last convolution (`channels` values,
    /// NaN on entry meaning "keep the host's initialisation"). The default
    /// keeps every one.
    fn init_bias(settings: Settings<'_>, bias: &mut [f32]) -> Result<(), String> {
        let _ = (settings, bias);
        Ok(())
    }

    /// The dense targets of one image, `[target_channels, H, W]`: every value
    /// must be written (the buffer holds NaN on entry).
    fn assign(
        settings: Settings<'_>,
        grid: Grid,
        truth: ImageTruth<'_>,
        targets: &mut [f32],
    ) -> Result<(), String>;

    /// The loss terms of a whole batch (normalised as the detector defines
    /// it) into `terms`, and with `grad` the gradient of their sum with
    /// respect to `head` (every value written; zero where the loss does not
    /// depend on it).
    fn loss(
        settings: Settings<'_>,
        grid: Grid,
        head: &[f32],
        targets: &[f32],
        terms: &mut [f32],
        grad: Option<&mut [f32]>,
    ) -> Result<(), String>;

    /// The scored boxes of one image's head output (`[channels, H, W]`),
    /// pushed onto `out`. Only those scoring at least `threshold` are kept;
    /// the shim ranks them by score (ties in push order) and keeps the
    /// host's capacity, so a kernel may push in any order it likes.
    fn decode(
        settings: Settings<'_>,
        grid: Grid,
        head: &[f32],
        threshold: f32,
        out: &mut Vec<Candidate>,
    ) -> Result<(), String>;
}

/// The settings behind a raw [`Config`].
///
/// # Safety
/// `config` must be null or point to a [`Config`] whose `settings` holds
/// `setting_count` values, all alive for `'a`.
unsafe fn settings<'a>(config: *const Config) -> Result<Settings<'a>, String> {
    // SAFETY: the caller's contract.
    let c = unsafe { config.as_ref() }.ok_or("null config")?;
    // SAFETY: as above.
    let values = unsafe { raw_slice(c.settings, c.setting_count) }.ok_or("null settings")?;
    Ok(Settings::new(c.classes, values))
}

/// A slice from the host's pointer; `None` for a null or misaligned one
/// unless it is empty.
///
/// # Safety
/// A non-null `ptr` must be valid for reading `len` values for `'a`.
unsafe fn raw_slice<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { slice::from_raw_parts(ptr, len) })
}

/// As [`raw_slice`], writable.
///
/// # Safety
/// A non-null `ptr` must be valid for writing `len` values for `'a`, and
/// nothing else may reach them meanwhile.
unsafe fn raw_slice_mut<'a, T>(ptr: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        return Some(&mut []);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { slice::from_raw_parts_mut(ptr, len) })
}

/// Values of a `[batch, channels, H, W]` buffer, or an error on overflow.
fn buffer_len(grid: Grid, channels: usize) -> Result<usize, String> {
    grid.batch
        .checked_mul(channels)
        .and_then(|n| n.checked_mul(grid.height))
        .and_then(|n| n.checked_mul(grid.width))
        .ok_or_else(|| format!("a {grid:?} grid of {channels} channels overflows memory"))
}

/// [`super::abi::LayoutFn`] of `K`.
///
/// # Safety
/// The ABI's contract for `LayoutFn`.
pub unsafe extern "C" fn layout_shim<K: DetectorKernel>(
    config: *const Config,
    layout: *mut HeadLayout,
) -> i32 {
    guarded("layout", || {
        // SAFETY: the ABI's contract.
        let s = unsafe { settings(config) }?;
        let l = K::layout(s)?;
        // SAFETY: the ABI says `layout` is a valid place for one value.
        let out = unsafe { layout.as_mut() }.ok_or("null layout")?;
        *out = l;
        Ok(())
    })
}

/// [`super::abi::InitBiasFn`] of `K`.
///
/// # Safety
/// The ABI's contract for `InitBiasFn`.
pub unsafe extern "C" fn init_bias_shim<K: DetectorKernel>(
    config: *const Config,
    bias: *mut f32,
) -> i32 {
    guarded("init_bias", || {
        // SAFETY: the ABI's contract.
        let s = unsafe { settings(config) }?;
        let channels = K::layout(s)?.channels;
        // SAFETY: the ABI says `bias` holds the layout's `channels` values.
        let bias = unsafe { raw_slice_mut(bias, channels) }.ok_or("null bias")?;
        K::init_bias(s, bias)
    })
}

/// [`super::abi::AssignFn`] of `K`: [`DetectorKernel::assign`] image by
/// image, after checking the ground truth's offsets.
///
/// # Safety
/// The ABI's contract for `AssignFn`.
pub unsafe extern "C" fn assign_shim<K: DetectorKernel>(
    config: *const Config,
    grid: Grid,
    truth: *const Truth,
    targets: *mut f32,
) -> i32 {
    guarded("assign", || {
        // SAFETY: the ABI's contract.
        let s = unsafe { settings(config) }?;
        let t = K::layout(s)?.target_channels;
        let per_image = buffer_len(Grid { batch: 1, ..grid }, t)?;
        let targets =
            unsafe { raw_slice_mut(targets, buffer_len(grid, t)?) }.ok_or("null targets")?;
        // SAFETY: the ABI says `truth` points to one `Truth`.
        let truth = unsafe { truth.as_ref() }.ok_or("null truth")?;
        // SAFETY: `offsets` holds `batch + 1` values.
        let offsets = unsafe { raw_slice(truth.offsets, grid.batch + 1) }.ok_or("null offsets")?;
        let n = *offsets.last().unwrap_or(&0);
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err("ground-truth offsets do not rise from 0".into());
        }
        // SAFETY: `boxes` holds `4 * n` values, `classes` and `flags` `n`.
        let boxes = unsafe { raw_slice(truth.boxes.cast::<[f32; 4]>(), n) }.ok_or("null boxes")?;
        let classes = unsafe { raw_slice(truth.classes, n) }.ok_or("null classes")?;
        let flags = unsafe { raw_slice(truth.flags, n) }.ok_or("null flags")?;
        if let Some(c) = classes.iter().find(|&&c| c as usize >= s.classes) {
            return Err(format!("a box has class {c} of {}", s.classes));
        }
        for (i, chunk) in targets.chunks_exact_mut(per_image.max(1)).enumerate() {
            let r = offsets[i]..offsets[i + 1];
            let image = ImageTruth {
                boxes: &boxes[r.clone()],
                classes: &classes[r.clone()],
                flags: &flags[r],
            };
            K::assign(s, grid, image, chunk)?;
        }
        Ok(())
    })
}

/// [`super::abi::LossFn`] of `K`.
///
/// # Safety
/// The ABI's contract for `LossFn`.
pub unsafe extern "C" fn loss_shim<K: DetectorKernel>(
    config: *const Config,
    grid: Grid,
    head: *const f32,
    targets: *const f32,
    terms: *mut f32,
    grad: *mut f32,
) -> i32 {
    guarded("loss", || {
        // SAFETY: the ABI's contract.
        let s = unsafe { settings(config) }?;
        let layout = K::layout(s)?;
        let head_len = buffer_len(grid, layout.channels)?;
        let head = unsafe { raw_slice(head, head_len) }.ok_or("null head")?;
        let targets = unsafe { raw_slice(targets, buffer_len(grid, layout.target_channels)?) }
            .ok_or("null targets")?;
        let terms = unsafe { raw_slice_mut(terms, K::TERMS.len()) }.ok_or("null terms")?;
        let grad = if grad.is_null() {
            None
        } else {
            Some(unsafe { raw_slice_mut(grad, head_len) }.ok_or("misaligned gradient")?)
        };
        K::loss(s, grid, head, targets, terms, grad)
    })
}

/// [`super::abi::DecodeFn`] of `K`: [`DetectorKernel::decode`] image by
/// image, then the threshold, the ranking by score (stable, NaN never kept)
/// and the capacity.
///
/// # Safety
/// The ABI's contract for `DecodeFn`.
pub unsafe extern "C" fn decode_shim<K: DetectorKernel>(
    config: *const Config,
    grid: Grid,
    head: *const f32,
    score_threshold: f32,
    capacity: usize,
    out: *mut f32,
    counts: *mut usize,
) -> i32 {
    guarded("decode", || {
        // SAFETY: the ABI's contract.
        let s = unsafe { settings(config) }?;
        let channels = K::layout(s)?.channels;
        let per_image = buffer_len(Grid { batch: 1, ..grid }, channels)?;
        let head = unsafe { raw_slice(head, buffer_len(grid, channels)?) }.ok_or("null head")?;
        let rows = capacity
            .checked_mul(DECODED_WIDTH)
            .and_then(|n| n.checked_mul(grid.batch))
            .ok_or("decode capacity overflows memory")?;
        let out = unsafe { raw_slice_mut(out, rows) }.ok_or("null output")?;
        let counts = unsafe { raw_slice_mut(counts, grid.batch) }.ok_or("null counts")?;
        let mut found = Vec::new();
        for i in 0..grid.batch {
            found.clear();
            let image = &head[i * per_image..(i + 1) * per_image];
            K::decode(s, grid, image, score_threshold, &mut found)?;
            found.retain(|c| c.score >= score_threshold);
            if let Some(c) = found.iter().find(|c| c.class as usize >= s.classes) {
                return Err(format!("decoded class {} of {}", c.class, s.classes));
            }
            found.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal));
            found.truncate(capacity);
            counts[i] = found.len();
            let dst = &mut out[i * capacity * DECODED_WIDTH..];
            for (c, row) in found.iter().zip(dst.chunks_exact_mut(DECODED_WIDTH)) {
                row[..4].copy_from_slice(&c.bbox);
                row[4] = c.score;
                row[5] = c.class as f32;
            }
        }
        Ok(())
    })
}
