//! Opening a plugin library and reading its table, defensively: the table
//! comes from code acbench did not compile, so every count, pointer, string
//! and enum value is checked before use.

use std::ffi::{CStr, c_char};
use std::path::Path;
use std::sync::Arc;

use acbench_plugin_api::abi::{self, ActivationDesc, EntryFn, LastErrorFn, ParamDesc, PluginTable};
use acbench_plugin_api::{ActivationDef, Constraint, ParamScope, ParamSpec};
use sha2::{Digest, Sha256};

use super::detector::{Detector, read_detector_entry};
use super::{Kernels, PluginError, PluginManifest};

/// More activations or parameters than this is a corrupt table, not a plugin.
const MAX_ACTIVATIONS: usize = 4096;
const MAX_PARAMS: usize = 256;

/// One activation read from a table.
#[derive(Debug, Clone)]
pub(crate) struct LoadedActivation {
    pub def: ActivationDef,
    pub kernels: Option<Kernels>,
}

/// A loaded library: what it defines and its manifest entry.
#[derive(Debug)]
pub(crate) struct LoadedPlugin {
    pub manifest: PluginManifest,
    pub activations: Vec<LoadedActivation>,
    pub detectors: Vec<Detector>,
}

/// Opens the library at `path`, calls its entry point and reads its table.
/// The library stays loaded for the rest of the process, even when its
/// table is refused (its code may already have run).
pub(crate) fn load(path: &Path) -> Result<LoadedPlugin, PluginError> {
    if !path.exists() {
        return Err(PluginError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let io = |source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    };
    // An absolute path keeps the dynamic loader from searching its own
    // directories, and is what the manifest records.
    let path = std::fs::canonicalize(path).map_err(io)?;
    let bytes = std::fs::read(&path).map_err(io)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    drop(bytes);

    // SAFETY: loading a library runs its initialisers; running a plugin's
    // code is what the user asked for by naming it.
    let library = unsafe { libloading::Library::new(&path) }.map_err(|e| PluginError::Load {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // Never unloaded: the table's strings and function pointers must stay
    // valid for as long as any model may call them.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // A library exports activations, detectors or both.
    // SAFETY: the symbol is declared by the ABI to have type `EntryFn`.
    let entry = unsafe { library.get::<EntryFn>(abi::ENTRY_SYMBOL) }.map(|sym| *sym);
    let (detector_entry, entry_error) = super::detector::library_entry(library);
    let activations = match (entry, detector_entry) {
        // SAFETY: `entry` is the plugin's entry point, kept loaded forever.
        (Ok(entry), _) => unsafe { read_entry(&path, entry, entry_error) }?,
        (Err(_), Some(_)) => Vec::new(),
        (Err(e), None) => {
            return Err(PluginError::NoEntry {
                path: path.clone(),
                message: e.to_string(),
            });
        }
    };
    let detectors = match detector_entry {
        // SAFETY: as above, for the detector entry point.
        Some(entry) => unsafe { read_detector_entry(&path, entry, entry_error) }?,
        None => Vec::new(),
    };
    Ok(LoadedPlugin {
        manifest: PluginManifest {
            path,
            sha256,
            activations: activations.iter().map(|a| a.def.name.clone()).collect(),
            detectors: detectors.iter().map(|d| d.name().to_owned()).collect(),
        },
        activations,
        detectors,
    })
}

/// Calls `entry` and reads the table it returns; `origin` names the plugin
/// in errors and messages, `entry_error` explains a null table.
///
/// # Safety
/// `entry` (and `entry_error`) must follow the ABI of
/// [`acbench_plugin_api::abi`] and everything they point to must stay valid
/// for the rest of the process.
pub(crate) unsafe fn read_entry(
    origin: &Path,
    entry: EntryFn,
    entry_error: Option<LastErrorFn>,
) -> Result<Vec<LoadedActivation>, PluginError> {
    let invalid = |message: String| PluginError::Invalid {
        path: origin.to_path_buf(),
        message,
    };
    // SAFETY: the caller vouches for `entry`.
    let table = unsafe { entry() };
    if table.is_null() {
        let why = entry_error
            // SAFETY: called on the thread that called `entry`, as the ABI asks.
            .map(|f| unsafe { super::message_from(f) })
            .unwrap_or_else(|| "it gives no reason".into());
        return Err(invalid(format!("its entry point returned no table: {why}")));
    }
    if !table.is_aligned() {
        return Err(invalid(
            "its entry point returned a misaligned table".into(),
        ));
    }
    // Only the first two fields have a fixed place in every ABI version: read
    // them alone, and nothing else until they match.
    // SAFETY: every version of the table starts with these two u32 fields.
    let (version, size) = unsafe {
        (
            std::ptr::addr_of!((*table).abi_version).read(),
            std::ptr::addr_of!((*table).struct_size).read(),
        )
    };
    if version != abi::ABI_VERSION {
        return Err(PluginError::AbiVersion {
            path: origin.to_path_buf(),
            found: version,
            expected: abi::ABI_VERSION,
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
    sizes("PluginTable", size as usize, size_of::<PluginTable>())?;
    // SAFETY: same version and size as ours: the whole table may be read.
    let t = unsafe { &*table };
    sizes(
        "ActivationDesc",
        t.activation_desc_size as usize,
        size_of::<ActivationDesc>(),
    )?;
    sizes(
        "ParamDesc",
        t.param_desc_size as usize,
        size_of::<ParamDesc>(),
    )?;
    // A C plugin could leave the function pointer null, which a Rust fn
    // pointer cannot hold: read it as an Option (same layout, null niche).
    // SAFETY: the field is a function pointer, possibly null.
    let last_error: Option<LastErrorFn> = unsafe {
        std::ptr::addr_of!(t.last_error)
            .cast::<Option<LastErrorFn>>()
            .read()
    };
    if last_error.is_none() {
        return Err(invalid("its table has no last_error function".into()));
    }
    if t.activation_count == 0 {
        return Err(invalid("it defines no activations".into()));
    }
    if t.activation_count > MAX_ACTIVATIONS {
        return Err(invalid(format!(
            "it claims {} activations (corrupt table?)",
            t.activation_count
        )));
    }
    // SAFETY: checked non-null/aligned and a plausible count; the ABI says it
    // points to `activation_count` descriptors.
    let descs = unsafe { slice(t.activations, t.activation_count) }
        .ok_or_else(|| invalid("its activation list is a null or misaligned pointer".into()))?;
    let plugin: Arc<Path> = Arc::from(origin);
    let mut out: Vec<LoadedActivation> = Vec::with_capacity(descs.len());
    for (i, d) in descs.iter().enumerate() {
        // SAFETY: `d` is one of the plugin's descriptors.
        let a = unsafe { read_activation(d, i, &plugin, last_error) }.map_err(invalid)?;
        if out.iter().any(|o| o.def.name == a.def.name) {
            return Err(invalid(format!(
                "it defines activation `{}` twice",
                a.def.name
            )));
        }
        out.push(a);
    }
    Ok(out)
}

/// `len` elements at `ptr`, or `None` for a null or misaligned pointer.
///
/// # Safety
/// A non-null, aligned `ptr` must point to `len` valid `T`s that live forever.
pub(super) unsafe fn slice<T>(ptr: *const T, len: usize) -> Option<&'static [T]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: per the function's contract.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A NUL-terminated UTF-8 string from the table; `what` names it in errors.
///
/// # Safety
/// A non-null `ptr` must point to a NUL-terminated string.
pub(super) unsafe fn string(ptr: *const c_char, what: &str) -> Result<String, String> {
    if ptr.is_null() {
        return Err(format!("{what} is a null pointer"));
    }
    // SAFETY: per the function's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map(str::to_owned)
        .map_err(|e| format!("{what} is not valid UTF-8 ({e})"))
}

/// Names the user types in `--act` specs and formulas: a letter or `_`, then
/// letters, digits, `_` (and `-` for activation names).
pub(super) fn valid_name(s: &str, dash: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'))
}

/// Reads descriptor number `index`.
///
/// # Safety
/// `d` must be a descriptor of a plugin that stays loaded.
unsafe fn read_activation(
    d: &ActivationDesc,
    index: usize,
    plugin: &Arc<Path>,
    last_error: Option<LastErrorFn>,
) -> Result<LoadedActivation, String> {
    // SAFETY (all string reads): pointers from the plugin's descriptor.
    let name = unsafe { string(d.name, &format!("the name of activation #{index}")) }?;
    if !valid_name(&name, true) {
        return Err(format!(
            "activation name `{name}` is not a valid name (a letter, then letters, digits, `_` or `-`)"
        ));
    }
    let summary = if d.summary.is_null() {
        String::new()
    } else {
        unsafe { string(d.summary, &format!("the summary of `{name}`")) }?
    };
    let formula = unsafe { string(d.formula, &format!("the formula of `{name}`")) }?;
    if d.param_count > MAX_PARAMS {
        return Err(format!(
            "activation `{name}` claims {} parameters (corrupt table?)",
            d.param_count
        ));
    }
    // SAFETY: the ABI says `params` points to `param_count` descriptors.
    let descs = unsafe { slice(d.params, d.param_count) }
        .ok_or_else(|| format!("the parameter list of `{name}` is a null or misaligned pointer"))?;
    let mut params = Vec::with_capacity(descs.len());
    for (j, p) in descs.iter().enumerate() {
        let pname = unsafe { string(p.name, &format!("the name of parameter #{j} of `{name}`")) }?;
        let bad = |what: String| format!("activation `{name}`, parameter `{pname}`: {what}");
        if !valid_name(&pname, false) || pname == "x" {
            return Err(bad(
                "not a valid parameter name (a letter, then letters, digits or `_`; not `x`)"
                    .into(),
            ));
        }
        if !p.init.is_finite() {
            return Err(bad(format!("initial value {} is not finite", p.init)));
        }
        let scope = match p.scope {
            abi::SCOPE_LAYER => ParamScope::Layer,
            abi::SCOPE_CHANNEL => ParamScope::Channel,
            other => return Err(bad(format!("unknown scope {other}"))),
        };
        let trainable = match p.trainable {
            0 => false,
            1 => true,
            other => return Err(bad(format!("`trainable` is {other}, not 0 or 1"))),
        };
        let constraint = match p.constraint {
            abi::CONSTRAINT_NONE => Constraint::None,
            abi::CONSTRAINT_POSITIVE if p.constraint_min.is_finite() && p.constraint_min > 0.0 => {
                Constraint::Positive(p.constraint_min)
            }
            abi::CONSTRAINT_POSITIVE => {
                return Err(bad(format!(
                    "the lower bound {} of a positive parameter must be a positive number",
                    p.constraint_min
                )));
            }
            other => return Err(bad(format!("unknown constraint {other}"))),
        };
        if params.iter().any(|q: &ParamSpec| q.name == pname) {
            return Err(bad("declared twice".into()));
        }
        params.push(ParamSpec {
            name: pname,
            init: p.init,
            scope,
            constraint,
            trainable,
        });
    }
    let kernels = match (d.forward, d.backward) {
        (Some(forward), Some(backward)) => Some(Kernels {
            forward,
            backward,
            last_error,
            plugin: plugin.clone(),
            activation: Arc::from(name.as_str()),
        }),
        (None, None) => None,
        _ => {
            return Err(format!(
                "activation `{name}` has a forward kernel without a backward one or the reverse; \
                 give both or neither"
            ));
        }
    };
    Ok(LoadedActivation {
        def: ActivationDef {
            name,
            summary,
            params,
            formula,
        },
        kernels,
    })
}
