//! Building a detector library's [`DetectorTable`] from safe Rust: the
//! [`Detector`] handle of a [`DetectorKernel`], the
//! [`export_detectors!`](crate::export_detectors) macro for a `cdylib`, and
//! [`LinkedDetectors`] with [`linked_detectors!`](crate::linked_detectors)
//! for a detector crate linked into the host.

use std::ffi::c_char;

use super::abi::{
    AssignFn, DETECTOR_ABI_VERSION, DecodeFn, DetectorDesc, DetectorTable, InitBiasFn, LayoutFn,
    LossFn, SettingDesc,
};
use super::kernel::{
    DetectorDef, DetectorKernel, assign_shim, decode_shim, init_bias_shim, layout_shim, loss_shim,
};
use crate::export::{OnceTable, leak_c_string};
use crate::kernel;
use crate::linked::Linked;

/// One detector a library exports: its definition and the shims of its
/// [`DetectorKernel`].
#[derive(Debug, Clone)]
pub struct Detector {
    def: DetectorDef,
    terms: &'static [&'static str],
    layout: LayoutFn,
    init_bias: InitBiasFn,
    assign: AssignFn,
    loss: LossFn,
    decode: DecodeFn,
}

impl Detector {
    /// The detector `K` implements.
    pub fn of<K: DetectorKernel>() -> Self {
        Self {
            def: K::def(),
            terms: K::TERMS,
            layout: layout_shim::<K>,
            init_bias: init_bias_shim::<K>,
            assign: assign_shim::<K>,
            loss: loss_shim::<K>,
            decode: decode_shim::<K>,
        }
    }

    /// The definition.
    pub fn def(&self) -> &DetectorDef {
        &self.def
    }
}

/// Checks one detector and turns it into its raw descriptor, leaking every
/// string and array it points to (the host never unloads a plugin).
fn describe(d: &Detector) -> Result<DetectorDesc, String> {
    let def = &d.def;
    if def.name.is_empty() {
        return Err("a detector has an empty name".into());
    }
    if d.terms.is_empty() {
        return Err(format!("detector `{}` names no loss terms", def.name));
    }
    let what = |field: &str| format!("detector `{}`: {field}", def.name);
    let settings = def
        .settings
        .iter()
        .map(|s| {
            Ok(SettingDesc {
                name: leak_c_string(&s.name, &what("setting name"))?,
                summary: leak_c_string(&s.summary, &what("setting summary"))?,
                default: s.default,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let terms = d
        .terms
        .iter()
        .map(|t| leak_c_string(t, &what("loss term")))
        .collect::<Result<Vec<*const c_char>, String>>()?;
    Ok(DetectorDesc {
        name: leak_c_string(&def.name, "detector name")?,
        summary: leak_c_string(&def.summary, &what("summary"))?,
        setting_count: settings.len(),
        settings: Box::leak(settings.into_boxed_slice()).as_ptr(),
        term_count: terms.len(),
        terms: Box::leak(terms.into_boxed_slice()).as_ptr(),
        layout: d.layout,
        init_bias: d.init_bias,
        assign: d.assign,
        loss: d.loss,
        decode: d.decode,
    })
}

/// Builds the table for `detectors`, refusing duplicate names.
fn build_table(detectors: &[Detector]) -> Result<&'static DetectorTable, String> {
    for (i, a) in detectors.iter().enumerate() {
        if detectors[..i].iter().any(|b| b.def.name == a.def.name) {
            return Err(format!("detector `{}` is exported twice", a.def.name));
        }
    }
    let descs = detectors
        .iter()
        .map(describe)
        .collect::<Result<Vec<_>, _>>()?;
    let size = |n: usize| u32::try_from(n).map_err(|_| "descriptor larger than 4 GiB".to_owned());
    Ok(Box::leak(Box::new(DetectorTable {
        abi_version: DETECTOR_ABI_VERSION,
        struct_size: size(size_of::<DetectorTable>())?,
        detector_desc_size: size(size_of::<DetectorDesc>())?,
        setting_desc_size: size(size_of::<SettingDesc>())?,
        detector_count: descs.len(),
        detectors: Box::leak(descs.into_boxed_slice()).as_ptr(),
        last_error: kernel::last_error,
    })))
}

/// The detector table behind [`export_detectors!`](crate::export_detectors)
/// and [`linked_detectors!`](crate::linked_detectors).
pub type DetectorTableCell = OnceTable<DetectorTable>;

impl OnceTable<DetectorTable> {
    /// The table, built on first use from `detectors()`; null (with the
    /// reason for `last_error`) when it cannot be built.
    pub fn get_or_build(&self, detectors: fn() -> Vec<Detector>) -> *const DetectorTable {
        self.get_or_build_with("detector", || build_table(&detectors()))
    }
}

/// Exports detectors from a `cdylib`: takes a function `fn() -> Vec<Detector>`
/// and generates the entry point `acbench_detector_entry`
/// ([`DETECTOR_ENTRY_SYMBOL`](super::abi::DETECTOR_ENTRY_SYMBOL)) and, unless
/// the library also calls [`export_plugin!`](crate::export_plugin) (which
/// defines it), the `acbench_plugin_last_error` that explains a null table.
///
/// ```standalone_crate
/// use acbench_plugin_api::detector::{Detector, DetectorKernel};
/// # use acbench_plugin_api::detector::{Candidate, DetectorDef, ImageTruth, Settings};
/// # use acbench_plugin_api::detector::abi::{Grid, HeadLayout};
/// # struct Mine;
/// # impl DetectorKernel for Mine {
/// #     const TERMS: &'static [&'static str] = &["l2"];
/// #     fn def() -> DetectorDef { DetectorDef { name: "mine".into(), summary: String::new(),
/// #         settings: vec![] } }
/// #     fn layout(s: Settings<'_>) -> Result<HeadLayout, String> {
/// #         Ok(HeadLayout { channels: s.classes, target_channels: s.classes }) }
/// #     fn assign(_: Settings<'_>, _: Grid, _: ImageTruth<'_>, t: &mut [f32]) -> Result<(), String> {
/// #         t.fill(0.0); Ok(()) }
/// #     fn loss(_: Settings<'_>, _: Grid, h: &[f32], t: &[f32], terms: &mut [f32],
/// #         grad: Option<&mut [f32]>) -> Result<(), String> {
/// #         terms[0] = h.iter().zip(t).map(|(a, b)| (a - b) * (a - b) / 2.0).sum();
/// #         if let Some(g) = grad { for ((g, a), b) in g.iter_mut().zip(h).zip(t) { *g = a - b; } }
/// #         Ok(()) }
/// #     fn decode(_: Settings<'_>, _: Grid, _: &[f32], _: f32, _: &mut Vec<Candidate>)
/// #         -> Result<(), String> { Ok(()) }
/// # }
///
/// fn detectors() -> Vec<Detector> {
///     vec![Detector::of::<Mine>()]
/// }
///
/// acbench_plugin_api::export_detectors!(detectors);
/// ```
#[macro_export]
macro_rules! export_detectors {
    ($detectors:path) => {
        $crate::export_detectors!(@entry $detectors);

        /// The plugin's `last_error` outside the table, for when
        /// `acbench_detector_entry` returned null.
        ///
        /// # Safety
        /// `buf` must be null or valid for writing `cap` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn acbench_plugin_last_error(
            buf: *mut ::std::ffi::c_char,
            cap: usize,
        ) -> usize {
            // SAFETY: the caller upholds `last_error`'s contract (above).
            unsafe { $crate::kernel::last_error(buf, cap) }
        }
    };
    (@entry $detectors:path) => {
        /// The acbench detector entry point: returns this library's detector
        /// table, or null when it cannot be built (the reason is then served
        /// by `acbench_plugin_last_error` on the calling thread).
        ///
        /// # Safety
        /// Always safe to call; `unsafe` only to match the ABI's entry type.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn acbench_detector_entry()
        -> *const $crate::detector::abi::DetectorTable {
            static TABLE: $crate::detector::export::DetectorTableCell =
                $crate::detector::export::DetectorTableCell::new();
            TABLE.get_or_build($detectors)
        }
    };
}

/// Detectors linked into the host: the detector counterpart of
/// [`LinkedPlugin`](crate::LinkedPlugin).
pub type LinkedDetectors = Linked<DetectorTable>;

/// The source of the API modules whose code runs inside every detector
/// call (the shims): a change there changes results as much as a change in
/// a detector does.
pub const DETECTOR_SOURCES: [&[u8]; 2] = [include_bytes!("kernel.rs"), include_bytes!("losses.rs")];

/// Makes the [`LinkedDetectors`] of a function `fn() -> Vec<Detector>`, as
/// [`export_detectors!`](crate::export_detectors) would export it but without
/// exported symbols. The name, version and `src/lib.rs` are the expanding
/// crate's (it must keep its detectors there).
#[macro_export]
macro_rules! linked_detectors {
    ($detectors:path) => {{
        unsafe extern "C" fn entry() -> *const $crate::detector::abi::DetectorTable {
            static TABLE: $crate::detector::export::DetectorTableCell =
                $crate::detector::export::DetectorTableCell::new();
            TABLE.get_or_build($detectors)
        }
        // SAFETY: `entry` returns a table built by `DetectorTableCell`, which
        // catches panics and leaks the table; `kernel::last_error` is the
        // message the cell records for a null table, on the calling thread.
        unsafe {
            $crate::detector::LinkedDetectors::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")),
                entry,
                $crate::kernel::last_error,
            )
        }
    }};
}
