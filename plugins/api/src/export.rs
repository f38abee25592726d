//! Building a plugin's [`PluginTable`] from safe Rust: the [`Activation`]
//! builder and the [`export_plugin!`](crate::export_plugin) macro.

use std::ffi::{CString, c_char};
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::abi::{ABI_VERSION, ActivationDesc, BackwardFn, ForwardFn, ParamDesc, PluginTable};
use crate::kernel::{self, FusedKernel, backward_shim, forward_shim, panic_message};
use crate::{ActivationDef, ParamScope};

/// One activation a plugin exports: its definition (parameters and formula,
/// tier 1) and optionally fused CPU kernels (tier 2).
#[derive(Debug, Clone)]
pub struct Activation {
    def: ActivationDef,
    kernels: Option<Kernels>,
}

/// The shims of one [`FusedKernel`] and what is needed to check it against
/// the definition when the table is built.
#[derive(Debug, Clone, Copy)]
struct Kernels {
    forward: ForwardFn,
    backward: BackwardFn,
    scopes: &'static [ParamScope],
    type_name: &'static str,
}

impl Activation {
    /// A formula-only activation: the host lowers the formula on every device.
    pub fn new(def: ActivationDef) -> Self {
        Self { def, kernels: None }
    }

    /// Adds fused CPU kernels; `K::SCOPES` must list the scopes of the
    /// definition's parameters in order (checked when the table is built).
    pub fn with_kernel<K: FusedKernel>(mut self) -> Self {
        self.kernels = Some(Kernels {
            forward: forward_shim::<K>,
            backward: backward_shim::<K>,
            scopes: K::SCOPES,
            type_name: std::any::type_name::<K>(),
        });
        self
    }

    /// The definition.
    pub fn def(&self) -> &ActivationDef {
        &self.def
    }

    /// Whether fused kernels are attached.
    pub fn has_kernel(&self) -> bool {
        self.kernels.is_some()
    }
}

/// A NUL-terminated copy of `s` that lives for the rest of the process.
pub(crate) fn leak_c_string(s: &str, what: &str) -> Result<*const c_char, String> {
    let c = CString::new(s).map_err(|_| format!("{what} {s:?} contains a NUL byte"))?;
    Ok(c.into_raw().cast_const())
}

/// Checks one activation and turns it into its raw descriptor, leaking every
/// string and array it points to (the host never unloads a plugin).
fn describe(act: &Activation) -> Result<ActivationDesc, String> {
    let def = &act.def;
    if def.name.is_empty() {
        return Err("an activation has an empty name".into());
    }
    let what = |field: &str| format!("activation `{}`: {field}", def.name);
    if let Some(k) = &act.kernels {
        let scopes: Vec<ParamScope> = def.params.iter().map(|p| p.scope).collect();
        if scopes != k.scopes {
            return Err(format!(
                "activation `{}`: kernel `{}` declares parameter scopes {:?} but the definition's \
                 parameters have {:?}",
                def.name, k.type_name, k.scopes, scopes
            ));
        }
    }
    let params = def
        .params
        .iter()
        .map(|p| {
            let (constraint, constraint_min) = p.constraint.to_raw();
            Ok(ParamDesc {
                name: leak_c_string(&p.name, &what("parameter name"))?,
                init: p.init,
                scope: p.scope.to_raw(),
                trainable: u32::from(p.trainable),
                constraint,
                constraint_min,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ActivationDesc {
        name: leak_c_string(&def.name, "activation name")?,
        summary: leak_c_string(&def.summary, &what("summary"))?,
        formula: leak_c_string(&def.formula, &what("formula"))?,
        param_count: params.len(),
        params: Box::leak(params.into_boxed_slice()).as_ptr(),
        forward: act.kernels.map(|k| k.forward),
        backward: act.kernels.map(|k| k.backward),
    })
}

/// Builds the table for `activations`, refusing duplicate names.
fn build_table(activations: &[Activation]) -> Result<&'static PluginTable, String> {
    for (i, a) in activations.iter().enumerate() {
        if activations[..i].iter().any(|b| b.def.name == a.def.name) {
            return Err(format!("activation `{}` is exported twice", a.def.name));
        }
    }
    let descs = activations
        .iter()
        .map(describe)
        .collect::<Result<Vec<_>, _>>()?;
    let size = |n: usize| u32::try_from(n).map_err(|_| "descriptor larger than 4 GiB".to_owned());
    Ok(Box::leak(Box::new(PluginTable {
        abi_version: ABI_VERSION,
        struct_size: size(size_of::<PluginTable>())?,
        activation_desc_size: size(size_of::<ActivationDesc>())?,
        param_desc_size: size(size_of::<ParamDesc>())?,
        activation_count: descs.len(),
        activations: Box::leak(descs.into_boxed_slice()).as_ptr(),
        last_error: kernel::last_error,
    })))
}

/// A leaked table shared between threads.
#[derive(Debug)]
struct TableRef<T: 'static>(&'static T);

// SAFETY: a table and everything it points to are leaked and never written
// after it is built, so reading them from any thread is sound.
unsafe impl<T> Send for TableRef<T> {}
// SAFETY: as above: immutable for the rest of the process.
unsafe impl<T> Sync for TableRef<T> {}

/// The once-built, leaked table behind an entry point (an activation
/// table, [`TableCell`], or a detector table,
/// [`DetectorTableCell`](crate::detector::export::DetectorTableCell)); one
/// static per macro expansion.
#[derive(Debug)]
pub struct OnceTable<T: 'static>(OnceLock<Result<TableRef<T>, String>>);

impl<T: 'static> OnceTable<T> {
    /// An empty cell, for a `static`.
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The table, built on first use by `build`. Null when building failed
    /// or panicked, with the reason for the host's `last_error` (`what`
    /// names the table in a panic's message); the failure is remembered, so
    /// every call agrees.
    pub(crate) fn get_or_build_with(
        &self,
        what: &str,
        build: impl FnOnce() -> Result<&'static T, String>,
    ) -> *const T {
        let built = self.0.get_or_init(|| {
            // Unwind safety: a panic leaves at most some leaked strings behind.
            panic::catch_unwind(AssertUnwindSafe(build))
                .unwrap_or_else(|payload| {
                    Err(format!(
                        "building the {what} table panicked: {}",
                        panic_message(payload.as_ref())
                    ))
                })
                .map(TableRef)
        });
        match built {
            Ok(table) => table.0,
            Err(message) => {
                kernel::set_last_error(message.clone());
                std::ptr::null()
            }
        }
    }
}

impl<T: 'static> Default for OnceTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The activation table behind [`export_plugin!`](crate::export_plugin) and
/// [`linked_plugin!`](crate::linked_plugin).
pub type TableCell = OnceTable<PluginTable>;

impl OnceTable<PluginTable> {
    /// The table, built on first use from `activations()`; null (with the
    /// reason for `last_error`) when it cannot be built.
    pub fn get_or_build(&self, activations: fn() -> Vec<Activation>) -> *const PluginTable {
        self.get_or_build_with("plugin", || build_table(&activations()))
    }
}

/// Exports a plugin: takes a function `fn() -> Vec<Activation>` and generates
/// the entry point `acbench_plugin_entry` ([`abi::ENTRY_SYMBOL`](crate::abi::ENTRY_SYMBOL))
/// that returns the plugin's table, built once on first call.
///
/// Use it once per library, at the crate root of a `cdylib`:
///
/// ```standalone_crate
/// use acbench_plugin_api::{Activation, ActivationDef, ParamSpec, export_plugin};
///
/// fn activations() -> Vec<Activation> {
///     vec![Activation::new(ActivationDef {
///         name: "softplus_k".into(),
///         summary: "log(1 + exp(k*x)) / k".into(),
///         params: vec![ParamSpec::scalar("k", 1.0)],
///         formula: "log(1 + exp(k * x)) / k".into(),
///     })]
/// }
///
/// export_plugin!(activations);
/// ```
///
/// A panic or an invalid definition (a NUL byte in a name, a kernel whose
/// scopes disagree with the parameters, a name exported twice) makes the
/// entry return null; the host then reads the reason through the second
/// exported symbol, [`abi::LAST_ERROR_SYMBOL`](crate::abi::LAST_ERROR_SYMBOL).
#[macro_export]
macro_rules! export_plugin {
    ($activations:path) => {
        /// The acbench plugin entry point: returns this library's activation
        /// table, or null when it cannot be built (the reason is then served
        /// by `acbench_plugin_last_error` on the calling thread).
        ///
        /// # Safety
        /// Always safe to call; `unsafe` only to match the ABI's `EntryFn`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn acbench_plugin_entry() -> *const $crate::abi::PluginTable {
            static TABLE: $crate::export::TableCell = $crate::export::TableCell::new();
            TABLE.get_or_build($activations)
        }

        /// The plugin's `last_error` outside the table, for when
        /// `acbench_plugin_entry` returned null.
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
}

#[cfg(test)]
mod tests;
