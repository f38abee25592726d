//! Detector plugins on the host side: reading a detector table through the
//! checks of [`acbench_plugin_api::detector::abi`], and [`Detector`], the
//! safe handle the training loop calls.
//!
//! Every call checks its buffers' lengths against the grid and the layout
//! before a pointer crosses, and every result that comes back (a count, a
//! class, a term) is checked before the host uses it: the plugin is code
//! acbench did not compile.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

use acbench_plugin_api::abi::{LAST_ERROR_SYMBOL, LastErrorFn, STATUS_OK, STATUS_PANIC};
use acbench_plugin_api::detector::abi::{
    self as dabi, AssignFn, Config, DECODED_WIDTH, DecodeFn, DetectorDesc, DetectorEntryFn,
    DetectorTable, Grid, HeadLayout, InitBiasFn, LayoutFn, LossFn, SettingDesc, Truth,
};

use super::PluginError;
use super::load::{slice, string, valid_name};

/// More detectors, settings or terms than this is a corrupt table.
const MAX_DETECTORS: usize = 256;
const MAX_SETTINGS: usize = 256;
const MAX_TERMS: usize = 64;
/// Head channels or target values per location beyond this are a corrupt
/// layout, not a detector.
const MAX_CHANNELS: usize = 1 << 20;

/// One hyper-parameter of a detector, as its table declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Name (`radius`).
    pub name: String,
    /// One-line description.
    pub summary: String,
    /// Value when a suite leaves it out.
    pub default: f64,
}

/// A detector read from a plugin's table: its description and its
/// functions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Detector {
    name: String,
    summary: String,
    settings: Vec<Setting>,
    terms: Vec<String>,
    fns: Functions,
    last_error: LastErrorFn,
    plugin: Arc<Path>,
}

#[derive(Debug, Clone, Copy)]
struct Functions {
    layout: LayoutFn,
    init_bias: InitBiasFn,
    assign: AssignFn,
    loss: LossFn,
    decode: DecodeFn,
}

/// A detector's settings resolved for a run: the defaults with a suite's
/// overrides, and the number of classes.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Object classes.
    pub classes: usize,
    /// Every setting's value, in the table's order.
    pub values: Vec<f64>,
}

impl DetectorConfig {
    fn raw(&self) -> Config {
        Config {
            classes: self.classes,
            setting_count: self.values.len(),
            settings: self.values.as_ptr(),
        }
    }
}

/// The ground truth of a batch as the ABI passes it: image `i`'s boxes are
/// `offsets[i]..offsets[i + 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthBatch {
    /// `[x, y, w, h]` per box, in input pixels.
    pub boxes: Vec<[f32; 4]>,
    /// Class per box.
    pub classes: Vec<u32>,
    /// [`dabi::FLAG_CROWD`] and [`dabi::FLAG_DIFFICULT`] bits per box.
    pub flags: Vec<u32>,
    /// `images + 1` offsets, from 0.
    pub offsets: Vec<usize>,
}

impl TruthBatch {
    /// An empty batch (no images yet).
    pub fn new() -> Self {
        Self {
            offsets: vec![0],
            ..Self::default()
        }
    }

    /// Clears the batch for reuse.
    pub fn clear(&mut self) {
        self.boxes.clear();
        self.classes.clear();
        self.flags.clear();
        self.offsets.clear();
        self.offsets.push(0);
    }

    /// Adds one box to the image being filled.
    pub fn push_box(&mut self, bbox: [f32; 4], class: u32, flags: u32) {
        self.boxes.push(bbox);
        self.classes.push(class);
        self.flags.push(flags);
    }

    /// Ends the image being filled.
    pub fn end_image(&mut self) {
        self.offsets.push(self.boxes.len());
    }

    /// Images in the batch.
    pub fn images(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// One scored box a detector decoded, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// `[x, y, w, h]`.
    pub bbox: [f32; 4],
    /// Confidence.
    pub score: f32,
    /// Class, below the config's `classes`.
    pub class: u32,
}

impl Detector {
    /// Name (`fcos`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One-line description.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Hyper-parameters with their defaults.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// Names of the loss terms, in the order [`Detector::loss`] returns them.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// The plugin file the detector comes from (a linked plugin's origin).
    pub fn plugin(&self) -> &Path {
        &self.plugin
    }

    /// The defaults with `overrides` applied; an unknown name or a value
    /// that is not finite is an error naming the detector's settings.
    pub fn config(
        &self,
        classes: usize,
        overrides: &BTreeMap<String, f64>,
    ) -> Result<DetectorConfig, PluginError> {
        for (name, value) in overrides {
            if !self.settings.iter().any(|s| &s.name == name) {
                let known: Vec<&str> = self.settings.iter().map(|s| s.name.as_str()).collect();
                return Err(self.invalid(format!(
                    "detector `{}` has no setting `{name}` (it has: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            if !value.is_finite() {
                return Err(self.invalid(format!(
                    "detector `{}`: setting `{name}` must be a finite number, got {value}",
                    self.name
                )));
            }
        }
        Ok(DetectorConfig {
            classes,
            values: self
                .settings
                .iter()
                .map(|s| overrides.get(&s.name).copied().unwrap_or(s.default))
                .collect(),
        })
    }

    /// Head channels and target values per location for `cfg`.
    pub fn layout(&self, cfg: &DetectorConfig) -> Result<HeadLayout, PluginError> {
        let raw = cfg.raw();
        let mut layout = HeadLayout::default();
        // SAFETY: `raw` points to `cfg.values`, alive for the call; `layout`
        // is a valid place for one `HeadLayout`.
        let status = unsafe { (self.fns.layout)(&raw, &mut layout) };
        self.status("layout", status)?;
        let plausible = |n: usize| (1..=MAX_CHANNELS).contains(&n);
        if !plausible(layout.channels) || !plausible(layout.target_channels) {
            return Err(self.invalid(format!(
                "detector `{}`: its layout asks for {} head channels and {} target values per \
                 location; each must be between 1 and {MAX_CHANNELS}",
                self.name, layout.channels, layout.target_channels
            )));
        }
        Ok(layout)
    }

    /// The initial bias of the head's last convolution: `channels` values,
    /// NaN where the host keeps its own initialisation.
    pub fn init_bias(
        &self,
        cfg: &DetectorConfig,
        channels: usize,
    ) -> Result<Vec<f32>, PluginError> {
        let raw = cfg.raw();
        let mut bias = vec![f32::NAN; channels];
        // SAFETY: `bias` holds the `channels` values the layout asked for.
        let status = unsafe { (self.fns.init_bias)(&raw, bias.as_mut_ptr()) };
        self.status("init_bias", status)?;
        if let Some(v) = bias.iter().find(|v| v.is_infinite()) {
            return Err(self.invalid(format!(
                "detector `{}`: init_bias gave the infinite value {v}",
                self.name
            )));
        }
        Ok(bias)
    }

    /// Dense targets of a batch into `targets` (resized to `[N, T, H, W]`).
    pub fn assign(
        &self,
        cfg: &DetectorConfig,
        layout: HeadLayout,
        grid: Grid,
        truth: &TruthBatch,
        targets: &mut Vec<f32>,
    ) -> Result<(), PluginError> {
        check_truth(truth, grid, cfg.classes).map_err(|m| self.invalid(m))?;
        let raw = cfg.raw();
        let n = values(grid, layout.target_channels).ok_or_else(|| self.too_big())?;
        targets.clear();
        targets.resize(n, f32::NAN);
        let truth = Truth {
            boxes: truth.boxes.as_ptr().cast(),
            classes: truth.classes.as_ptr(),
            flags: truth.flags.as_ptr(),
            offsets: truth.offsets.as_ptr(),
        };
        // SAFETY: `truth`'s arrays hold `offsets[batch]` boxes (checked
        // above) and `targets` the `[N, T, H, W]` values the ABI writes.
        let status = unsafe { (self.fns.assign)(&raw, grid, &truth, targets.as_mut_ptr()) };
        self.status("assign", status)
    }

    /// The loss terms of a batch and, with `grad`, the gradient of their sum
    /// with respect to `head` (`[N, channels, H, W]`). The terms may be NaN
    /// or infinite: that is a divergence, for the caller to judge.
    pub fn loss(
        &self,
        cfg: &DetectorConfig,
        layout: HeadLayout,
        grid: Grid,
        head: &[f32],
        targets: &[f32],
        grad: Option<&mut [f32]>,
    ) -> Result<Vec<f32>, PluginError> {
        let head_len = values(grid, layout.channels).ok_or_else(|| self.too_big())?;
        let target_len = values(grid, layout.target_channels).ok_or_else(|| self.too_big())?;
        let grad_ok = grad.as_ref().is_none_or(|g| g.len() == head_len);
        if head.len() != head_len || targets.len() != target_len || !grad_ok {
            return Err(self.invalid(format!(
                "detector `{}`: loss called with {} head, {} target values for a {}x{}x{} grid \
                 of {} images (host bug)",
                self.name,
                head.len(),
                targets.len(),
                grid.height,
                grid.width,
                layout.channels,
                grid.batch
            )));
        }
        let raw = cfg.raw();
        let mut terms = vec![f32::NAN; self.terms.len()];
        let grad = grad.map_or(std::ptr::null_mut(), |g| g.as_mut_ptr());
        // SAFETY: every buffer has the length the ABI gives it (checked).
        let status = unsafe {
            (self.fns.loss)(
                &raw,
                grid,
                head.as_ptr(),
                targets.as_ptr(),
                terms.as_mut_ptr(),
                grad,
            )
        };
        self.status("loss", status)?;
        Ok(terms)
    }

    /// Scored boxes per image before non-maximum suppression, at most
    /// `capacity` per image, each checked (finite, a known class).
    pub fn decode(
        &self,
        cfg: &DetectorConfig,
        layout: HeadLayout,
        grid: Grid,
        head: &[f32],
        score_threshold: f32,
        capacity: usize,
    ) -> Result<Vec<Vec<Decoded>>, PluginError> {
        let head_len = values(grid, layout.channels).ok_or_else(|| self.too_big())?;
        if head.len() != head_len {
            return Err(self.invalid(format!(
                "detector `{}`: decode called with {} head values, expected {head_len} (host bug)",
                self.name,
                head.len()
            )));
        }
        let out_len = grid
            .batch
            .checked_mul(capacity)
            .and_then(|n| n.checked_mul(DECODED_WIDTH))
            .ok_or_else(|| self.too_big())?;
        let mut out = vec![f32::NAN; out_len];
        let mut counts = vec![usize::MAX; grid.batch];
        let raw = cfg.raw();
        // SAFETY: `out` holds `batch * capacity` rows and `counts` `batch`
        // values, as the ABI writes them.
        let status = unsafe {
            (self.fns.decode)(
                &raw,
                grid,
                head.as_ptr(),
                score_threshold,
                capacity,
                out.as_mut_ptr(),
                counts.as_mut_ptr(),
            )
        };
        self.status("decode", status)?;
        let mut images = Vec::with_capacity(grid.batch);
        for (i, &count) in counts.iter().enumerate() {
            if count > capacity {
                return Err(self.invalid(format!(
                    "detector `{}`: decode reported {count} boxes for image {i}, more than the \
                     capacity {capacity}",
                    self.name
                )));
            }
            let rows = out[i * capacity * DECODED_WIDTH..][..count * DECODED_WIDTH]
                .chunks_exact(DECODED_WIDTH);
            let mut boxes = Vec::with_capacity(count);
            for (j, r) in rows.enumerate() {
                let class = r[5];
                let known = class >= 0.0 && class.fract() == 0.0 && (class as usize) < cfg.classes;
                if !known {
                    return Err(self.invalid(format!(
                        "detector `{}`: decoded box {j} of image {i} has class {class}, not one \
                         of the {} classes",
                        self.name, cfg.classes
                    )));
                }
                boxes.push(Decoded {
                    bbox: [r[0], r[1], r[2], r[3]],
                    score: r[4],
                    class: class as u32,
                });
            }
            images.push(boxes);
        }
        Ok(images)
    }

    fn status(&self, function: &'static str, status: i32) -> Result<(), PluginError> {
        if status == STATUS_OK {
            return Ok(());
        }
        // SAFETY: the plugin stays loaded, and this runs on the thread that
        // made the call, where the plugin keeps its last error.
        let message = unsafe { super::message_from(self.last_error) };
        Err(PluginError::DetectorCall {
            path: self.plugin.to_path_buf(),
            detector: self.name.clone(),
            function,
            panicked: status == STATUS_PANIC,
            status,
            message,
        })
    }

    fn invalid(&self, message: String) -> PluginError {
        PluginError::Invalid {
            path: self.plugin.to_path_buf(),
            message,
        }
    }

    fn too_big(&self) -> PluginError {
        self.invalid(format!(
            "detector `{}`: the buffers of this grid and layout do not fit in memory",
            self.name
        ))
    }
}

/// Values of a `[N, per_location, H, W]` buffer, `None` on overflow.
fn values(grid: Grid, per_location: usize) -> Option<usize> {
    grid.batch
        .checked_mul(per_location)?
        .checked_mul(grid.height)?
        .checked_mul(grid.width)
}

/// The host's own consistency checks of a batch before it crosses.
fn check_truth(t: &TruthBatch, grid: Grid, classes: usize) -> Result<(), String> {
    let n = t.boxes.len();
    if t.offsets.len() != grid.batch + 1
        || t.offsets.first() != Some(&0)
        || t.offsets.last() != Some(&n)
        || t.offsets.windows(2).any(|w| w[0] > w[1])
        || t.classes.len() != n
        || t.flags.len() != n
    {
        return Err(format!(
            "a batch of {} images with inconsistent ground truth (host bug)",
            grid.batch
        ));
    }
    if let Some(c) = t.classes.iter().find(|&&c| c as usize >= classes) {
        return Err(format!("a ground-truth box has class {c} of {classes}"));
    }
    Ok(())
}

/// Reads the detector table `entry` returns; `origin` names the plugin,
/// `entry_error` explains a null table.
///
/// # Safety
/// `entry` (and `entry_error`) must follow the ABI of
/// [`acbench_plugin_api::detector::abi`], and everything they point to must
/// stay valid for the rest of the process.
pub(crate) unsafe fn read_detector_entry(
    origin: &Path,
    entry: DetectorEntryFn,
    entry_error: Option<LastErrorFn>,
) -> Result<Vec<Detector>, PluginError> {
    let invalid = |message: String| PluginError::Invalid {
        path: origin.to_path_buf(),
        message,
    };
    // SAFETY: the caller vouches for `entry`.
    let table = unsafe { entry() };
    if table.is_null() {
        let why = entry_error
            // SAFETY: on the thread that called `entry`, as the ABI asks.
            .map(|f| unsafe { super::message_from(f) })
            .unwrap_or_else(|| "it gives no reason".into());
        return Err(invalid(format!(
            "its detector entry point returned no table: {why}"
        )));
    }
    if !table.is_aligned() {
        return Err(invalid(
            "its detector entry point returned a misaligned table".into(),
        ));
    }
    // SAFETY: every version of the table starts with these two u32 fields.
    let (version, size) = unsafe {
        (
            std::ptr::addr_of!((*table).abi_version).read(),
            std::ptr::addr_of!((*table).struct_size).read(),
        )
    };
    if version != dabi::DETECTOR_ABI_VERSION {
        return Err(PluginError::AbiVersion {
            path: origin.to_path_buf(),
            found: version,
            expected: dabi::DETECTOR_ABI_VERSION,
        });
    }
    let sizes = |what, found: usize, expected| {
        if found == expected {
            Ok(())
        } else {
            Err(PluginError::StructSize {
                path: origin.to_path_buf(),
                what,
                found,
                expected,
            })
        }
    };
    sizes("DetectorTable", size as usize, size_of::<DetectorTable>())?;
    // SAFETY: same version and size as ours: the whole table may be read.
    let t = unsafe { &*table };
    sizes(
        "DetectorDesc",
        t.detector_desc_size as usize,
        size_of::<DetectorDesc>(),
    )?;
    sizes(
        "SettingDesc",
        t.setting_desc_size as usize,
        size_of::<SettingDesc>(),
    )?;
    // SAFETY: a function pointer, possibly null from a C plugin.
    let last_error: Option<LastErrorFn> = unsafe {
        std::ptr::addr_of!(t.last_error)
            .cast::<Option<LastErrorFn>>()
            .read()
    };
    let last_error = last_error
        .ok_or_else(|| invalid("its detector table has no last_error function".into()))?;
    if t.detector_count == 0 {
        return Err(invalid("its detector table lists no detectors".into()));
    }
    if t.detector_count > MAX_DETECTORS {
        return Err(invalid(format!(
            "it claims {} detectors (corrupt table?)",
            t.detector_count
        )));
    }
    // SAFETY: the ABI says `detectors` points to `detector_count` descriptors.
    let descs = unsafe { slice(t.detectors, t.detector_count) }
        .ok_or_else(|| invalid("its detector list is a null or misaligned pointer".into()))?;
    let plugin: Arc<Path> = Arc::from(origin);
    let mut out: Vec<Detector> = Vec::with_capacity(descs.len());
    for (i, d) in descs.iter().enumerate() {
        // SAFETY: `d` is one of the plugin's descriptors.
        let det = unsafe { read_detector(d, i, &plugin, last_error) }.map_err(invalid)?;
        if out.iter().any(|o| o.name == det.name) {
            return Err(invalid(format!("it defines detector `{}` twice", det.name)));
        }
        out.push(det);
    }
    Ok(out)
}

/// Reads detector descriptor number `index`.
///
/// # Safety
/// `d` must be a descriptor of a plugin that stays loaded.
unsafe fn read_detector(
    d: &DetectorDesc,
    index: usize,
    plugin: &Arc<Path>,
    last_error: LastErrorFn,
) -> Result<Detector, String> {
    // SAFETY (all reads below): pointers from the plugin's descriptor.
    let name = unsafe { string(d.name, &format!("the name of detector #{index}")) }?;
    if !valid_name(&name, true) {
        return Err(format!(
            "detector name `{name}` is not a valid name (a letter, then letters, digits, `_` or `-`)"
        ));
    }
    let summary = if d.summary.is_null() {
        String::new()
    } else {
        unsafe { string(d.summary, &format!("the summary of detector `{name}`")) }?
    };
    if d.setting_count > MAX_SETTINGS || d.term_count > MAX_TERMS {
        return Err(format!(
            "detector `{name}` claims {} settings and {} loss terms (corrupt table?)",
            d.setting_count, d.term_count
        ));
    }
    let descs = unsafe { slice(d.settings, d.setting_count) }.ok_or_else(|| {
        format!("the settings of detector `{name}` are a null or misaligned pointer")
    })?;
    let mut settings: Vec<Setting> = Vec::with_capacity(descs.len());
    for (j, s) in descs.iter().enumerate() {
        let sname = unsafe { string(s.name, &format!("setting #{j} of detector `{name}`")) }?;
        let bad = |what: String| format!("detector `{name}`, setting `{sname}`: {what}");
        if !valid_name(&sname, false) {
            return Err(bad(
                "not a valid setting name (a letter, then letters, digits or `_`)".into(),
            ));
        }
        if !s.default.is_finite() {
            return Err(bad(format!("default {} is not finite", s.default)));
        }
        if settings.iter().any(|o| o.name == sname) {
            return Err(bad("declared twice".into()));
        }
        let summary = if s.summary.is_null() {
            String::new()
        } else {
            unsafe { string(s.summary, &bad("summary".into())) }?
        };
        settings.push(Setting {
            name: sname,
            summary,
            default: s.default,
        });
    }
    if d.term_count == 0 {
        return Err(format!("detector `{name}` names no loss terms"));
    }
    let term_ptrs: &[*const c_char] = unsafe { slice(d.terms, d.term_count) }.ok_or_else(|| {
        format!("the terms of detector `{name}` are a null or misaligned pointer")
    })?;
    let mut terms: Vec<String> = Vec::with_capacity(term_ptrs.len());
    for (j, &p) in term_ptrs.iter().enumerate() {
        let term = unsafe { string(p, &format!("loss term #{j} of detector `{name}`")) }?;
        if !valid_name(&term, false) || terms.contains(&term) {
            return Err(format!(
                "detector `{name}`: loss term `{term}` is not a valid name or is named twice"
            ));
        }
        terms.push(term);
    }
    // Read the function pointers as options: a C plugin may leave one null.
    let f = |field: *const (), what: &str| -> Result<(), String> {
        // SAFETY: `field` is the address of a function-pointer field.
        let p = unsafe { field.cast::<Option<unsafe extern "C" fn()>>().read() };
        p.map(|_| ())
            .ok_or_else(|| format!("detector `{name}` has no `{what}` function"))
    };
    f(std::ptr::addr_of!(d.layout).cast(), "layout")?;
    f(std::ptr::addr_of!(d.init_bias).cast(), "init_bias")?;
    f(std::ptr::addr_of!(d.assign).cast(), "assign")?;
    f(std::ptr::addr_of!(d.loss).cast(), "loss")?;
    f(std::ptr::addr_of!(d.decode).cast(), "decode")?;
    Ok(Detector {
        name,
        summary,
        settings,
        terms,
        fns: Functions {
            layout: d.layout,
            init_bias: d.init_bias,
            assign: d.assign,
            loss: d.loss,
            decode: d.decode,
        },
        last_error,
        plugin: plugin.clone(),
    })
}

/// The optional detector entry point and `last_error` of a library.
pub(crate) fn library_entry(
    library: &'static libloading::Library,
) -> (Option<DetectorEntryFn>, Option<LastErrorFn>) {
    // SAFETY: the symbols are declared by the ABI to have these types.
    let entry = unsafe { library.get::<DetectorEntryFn>(dabi::DETECTOR_ENTRY_SYMBOL) }
        .ok()
        .map(|s| *s);
    // SAFETY: as above.
    let error = unsafe { library.get::<LastErrorFn>(LAST_ERROR_SYMBOL) }
        .ok()
        .map(|s| *s);
    (entry, error)
}
