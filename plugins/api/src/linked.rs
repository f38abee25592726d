//! A plugin compiled into the host instead of loaded from a library: the
//! [`LinkedPlugin`] handle and the [`linked_plugin!`](crate::linked_plugin)
//! macro.
//!
//! The host reads a linked plugin's table exactly as it reads a loaded one's
//! (version, sizes, every pointer and value), so the ABI boundary is the same
//! for both. Unlike [`export_plugin!`](crate::export_plugin), nothing here
//! has an unmangled name: any number of linked plugins can share one binary,
//! and the same crate can still be built as a `cdylib` by a small crate that
//! calls `export_plugin!` on its activations.

use crate::abi::{LastErrorFn, PluginTable};

/// The entry points of a plugin linked into the host, with the name,
/// version and source of the crate that defines it (its identity, since it
/// has no file). `T` is the table its entry returns: [`LinkedPlugin`] for
/// activations, [`LinkedDetectors`](crate::detector::LinkedDetectors) for
/// detectors.
#[derive(Debug)]
pub struct Linked<T: 'static> {
    name: &'static str,
    version: &'static str,
    source: &'static [u8],
    entry: unsafe extern "C" fn() -> *const T,
    last_error: LastErrorFn,
}

// Written by hand: a derive would ask `T: Clone`, but only pointers are copied.
impl<T: 'static> Clone for Linked<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: 'static> Copy for Linked<T> {}

/// An activation plugin linked into the host.
pub type LinkedPlugin = Linked<PluginTable>;

impl<T: 'static> Linked<T> {
    /// A linked plugin; [`linked_plugin!`](crate::linked_plugin) and
    /// [`linked_detectors!`](crate::linked_detectors) are the safe ways to
    /// make one.
    ///
    /// # Safety
    /// `entry` must follow its ABI's entry contract ([`EntryFn`](crate::abi::EntryFn),
    /// [`DetectorEntryFn`](crate::detector::abi::DetectorEntryFn)) and
    /// `last_error` [`LastErrorFn`]'s (never unwind; the table and
    /// everything it points to live for the rest of the process);
    /// `last_error` must explain a null table on the thread that called
    /// `entry`.
    pub const unsafe fn new(
        name: &'static str,
        version: &'static str,
        source: &'static [u8],
        entry: unsafe extern "C" fn() -> *const T,
        last_error: LastErrorFn,
    ) -> Self {
        Self {
            name,
            version,
            source,
            entry,
            last_error,
        }
    }

    /// The defining crate's name (`acbench-adaptive`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The defining crate's version.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The defining crate's `src/lib.rs`, where its kernels are: with
    /// [`KERNEL_SOURCES`] (or the detector API's sources) it lets a host tell
    /// when a kernel's code changed, which the definitions alone do not show.
    pub fn source(&self) -> &'static [u8] {
        self.source
    }

    /// The entry point, as the library's entry symbol would be.
    pub fn entry(&self) -> unsafe extern "C" fn() -> *const T {
        self.entry
    }

    /// The `last_error` outside the table, as
    /// [`abi::LAST_ERROR_SYMBOL`](crate::abi::LAST_ERROR_SYMBOL) would be.
    pub fn last_error(&self) -> LastErrorFn {
        self.last_error
    }

    /// The plugin's table, or `None` when it could not be built (the reason
    /// is then [`kernel::last_error_message`](crate::kernel::last_error_message)
    /// on this thread). For the plugin's own tests and benchmarks; a host
    /// reads the table through its checks instead.
    pub fn table(&self) -> Option<&'static T> {
        // SAFETY: `new`'s contract: the entry never unwinds and its table
        // lives for the rest of the process.
        unsafe { (self.entry)().as_ref() }
    }
}

/// The source of the API modules whose code runs inside plugin kernels
/// (the kernel loops and shims, [`Pointwise`](crate::Pointwise), [`math`](crate::math)):
/// a change there changes results as much as a change in a plugin does.
pub const KERNEL_SOURCES: [&[u8]; 3] = [
    include_bytes!("kernel.rs"),
    include_bytes!("pointwise.rs"),
    include_bytes!("math.rs"),
];

/// Makes the [`LinkedPlugin`] of a function `fn() -> Vec<Activation>`: an
/// entry point whose table is built once on first call, as
/// [`export_plugin!`](crate::export_plugin)'s, but without exported symbols.
/// The name, version and `src/lib.rs` are those of the crate that expands
/// the macro (it must keep its kernels there).
///
/// ```
/// use acbench_plugin_api::{Activation, ActivationDef, LinkedPlugin, ParamSpec, linked_plugin};
///
/// /// The activations, shared by the linked plugin and a `cdylib` crate
/// /// that calls `export_plugin!(my_acts::activations)`.
/// pub fn activations() -> Vec<Activation> {
///     vec![Activation::new(ActivationDef {
///         name: "softplus_k".into(),
///         summary: "log(1 + exp(k*x)) / k".into(),
///         params: vec![ParamSpec::scalar("k", 1.0)],
///         formula: "log(1 + exp(k * x)) / k".into(),
///     })]
/// }
///
/// /// For a host that links this crate.
/// pub const PLUGIN: LinkedPlugin = linked_plugin!(activations);
///
/// let table = PLUGIN.table().expect("the table builds");
/// assert_eq!(table.activation_count, 1);
/// ```
#[macro_export]
macro_rules! linked_plugin {
    ($activations:path) => {{
        unsafe extern "C" fn entry() -> *const $crate::abi::PluginTable {
            static TABLE: $crate::export::TableCell = $crate::export::TableCell::new();
            TABLE.get_or_build($activations)
        }
        // SAFETY: `entry` returns a table built by `TableCell`, which catches
        // panics and leaks the table; `kernel::last_error` is the message
        // `TableCell` records for a null table, on the calling thread.
        unsafe {
            $crate::LinkedPlugin::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")),
                entry,
                $crate::kernel::last_error,
            )
        }
    }};
}

#[cfg(test)]
mod tests {
    use crate::abi::ABI_VERSION;
    use crate::kernel::last_error_message;
    use crate::{Activation, ActivationDef, LinkedPlugin, ParamSpec};

    fn two() -> Vec<Activation> {
        ["first", "second"]
            .into_iter()
            .map(|name| {
                Activation::new(ActivationDef {
                    name: name.into(),
                    summary: String::new(),
                    params: vec![ParamSpec::scalar("k", 1.0)],
                    formula: "k * x".into(),
                })
            })
            .collect()
    }

    fn twice() -> Vec<Activation> {
        let mut acts = two();
        acts.extend(two());
        acts
    }

    const TWO: LinkedPlugin = linked_plugin!(two);
    const TWICE: LinkedPlugin = linked_plugin!(twice);

    #[test]
    fn a_linked_plugin_names_its_crate_and_builds_its_table_once() {
        assert_eq!(TWO.name(), "acbench-plugin-api");
        assert_eq!(TWO.version(), env!("CARGO_PKG_VERSION"));
        let table = TWO.table().expect("table");
        assert_eq!(table.abi_version, ABI_VERSION);
        assert_eq!(table.activation_count, 2);
        let again = TWO.table().expect("table");
        assert!(std::ptr::eq(table, again), "built once");
        // SAFETY: the entry follows the ABI (built by the macro).
        assert!(std::ptr::eq(unsafe { (TWO.entry())() }, table));
    }

    #[test]
    fn a_table_that_cannot_be_built_is_null_with_its_reason() {
        assert!(TWICE.table().is_none());
        assert_eq!(last_error_message(), "activation `first` is exported twice");
        let mut buf = [0u8; 64];
        // SAFETY: `buf` holds 64 writable bytes.
        let len = unsafe { (TWICE.last_error())(buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..len], b"activation `first` is exported twice");
    }
}
