//! The plugins linked into acbench: the shipped activations and detectors.
//!
//! acbench links its shipped plugin crates instead of looking for their
//! libraries on disk, so a binary copied anywhere (`cargo install`) has
//! them. Their tables are read by `read_entry`, as every loaded library's
//! are, so the ABI boundary and its checks are the same for both.
//!
//! A linked plugin has no file to hash, so its manifest entry is:
//! - `path`: `<linked>/CRATE` (`<linked>/acbench-adaptive`), which no loaded
//!   library can have (their paths are absolute);
//! - `sha256`: the hash of the crate's name and version, of its source
//!   (`src/lib.rs`, where its kernels are, and the plugin API's kernel
//!   modules, `acbench_plugin_api::linked::KERNEL_SOURCES`) and of every
//!   definition in its table as read through the ABI (names, summaries,
//!   formulas, every parameter's name, initial value, scope, trainability
//!   and constraint, and whether fused kernels are attached). It changes
//!   when a definition or a kernel's code changes, and not when the binary
//!   is merely rebuilt (another compiler, other flags) or moved.
//!
//! Linked detectors ([`SHIPPED_DETECTORS`]) are read the same way, by
//! `read_detector_entry`; their hash covers the crate, its source and the
//! API's detector shims and losses
//! (`acbench_plugin_api::detector::export::DETECTOR_SOURCES`), and every
//! detector's name, summary, settings with their defaults, and loss terms.

use std::path::{Path, PathBuf};

use acbench_plugin_api::LinkedPlugin;
use acbench_plugin_api::ParamScope;
use acbench_plugin_api::detector::LinkedDetectors;
use acbench_plugin_api::detector::export::DETECTOR_SOURCES;
use acbench_plugin_api::linked::KERNEL_SOURCES;
use sha2::{Digest, Sha256};

use super::detector::{Detector, read_detector_entry};
use super::load::{LoadedActivation, LoadedPlugin, read_entry};
use super::{PluginError, PluginManifest};

/// The plugins shipped with acbench, in registration order.
pub const SHIPPED: [LinkedPlugin; 3] = [
    acbench_adaptive::PLUGIN,
    acbench_baselines::PLUGIN,
    acbench_per_channel::PLUGIN,
];

/// The detector plugins shipped with acbench, in registration order.
pub const SHIPPED_DETECTORS: [LinkedDetectors; 2] =
    [acbench_fcos::DETECTORS, acbench_yolo::DETECTORS];

/// The first component of a linked plugin's `path` in its manifest.
const LINKED_ROOT: &str = "<linked>";

/// The name a linked plugin goes by in manifests and messages:
/// `<linked>/CRATE`.
pub fn origin(plugin: &LinkedPlugin) -> PathBuf {
    origin_of(plugin.name())
}

fn origin_of(krate: &str) -> PathBuf {
    Path::new(LINKED_ROOT).join(krate)
}

/// The crate name when `path` is a linked plugin's [`origin`] (`None` for
/// a library file).
pub fn linked_name(path: &Path) -> Option<&str> {
    path.strip_prefix(LINKED_ROOT).ok()?.to_str()
}

/// Reads a linked plugin's table through the same checks as a library's.
pub(crate) fn read(plugin: &LinkedPlugin) -> Result<LoadedPlugin, PluginError> {
    let path = origin(plugin);
    // SAFETY: `LinkedPlugin::new`'s contract is `read_entry`'s.
    let activations = unsafe { read_entry(&path, plugin.entry(), Some(plugin.last_error())) }?;
    Ok(LoadedPlugin {
        manifest: PluginManifest {
            sha256: identity(plugin, &activations),
            activations: activations.iter().map(|a| a.def.name.clone()).collect(),
            detectors: Vec::new(),
            path,
        },
        activations,
        detectors: Vec::new(),
    })
}

/// Reads linked detectors' table through the same checks as a library's.
pub(crate) fn read_detectors(linked: &LinkedDetectors) -> Result<LoadedPlugin, PluginError> {
    let path = origin_of(linked.name());
    // SAFETY: `LinkedDetectors::new`'s contract is `read_detector_entry`'s.
    let detectors =
        unsafe { read_detector_entry(&path, linked.entry(), Some(linked.last_error())) }?;
    Ok(LoadedPlugin {
        manifest: PluginManifest {
            sha256: detector_identity(linked, &detectors),
            activations: Vec::new(),
            detectors: detectors.iter().map(|d| d.name().to_owned()).collect(),
            path,
        },
        activations: Vec::new(),
        detectors,
    })
}

/// The hash that stands for linked detectors' file hash (module docs).
fn detector_identity(linked: &LinkedDetectors, detectors: &[Detector]) -> String {
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update(s.as_bytes());
        h.update([0]);
    };
    text("acbench linked detectors");
    text(linked.name());
    text(linked.version());
    for source in std::iter::once(linked.source()).chain(DETECTOR_SOURCES) {
        text(&String::from_utf8_lossy(source));
    }
    for d in detectors {
        text(d.name());
        text(d.summary());
        text(&d.settings().len().to_string());
        for s in d.settings() {
            text(&s.name);
            text(&s.summary);
            text(&format!("{:016x}", s.default.to_bits()));
        }
        text(&d.terms().len().to_string());
        for t in d.terms() {
            text(t);
        }
    }
    hex::encode(h.finalize())
}

/// The hash that stands for a linked plugin's file hash (module docs).
/// Every field is written with a terminator or at a fixed width, so no two
/// different plugins write the same bytes.
fn identity(plugin: &LinkedPlugin, activations: &[LoadedActivation]) -> String {
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update(s.as_bytes());
        h.update([0]);
    };
    text("acbench linked plugin");
    text(plugin.name());
    text(plugin.version());
    for source in std::iter::once(plugin.source()).chain(KERNEL_SOURCES) {
        // Source files are UTF-8 text without NUL bytes.
        text(&String::from_utf8_lossy(source));
    }
    for a in activations {
        let d = &a.def;
        text(&d.name);
        text(&d.summary);
        text(&d.formula);
        text(if a.kernels.is_some() {
            "fused"
        } else {
            "formula"
        });
        text(&d.params.len().to_string());
        for p in &d.params {
            let (constraint, min) = p.constraint.to_raw();
            text(&p.name);
            text(&format!(
                "{:016x} {} {} {} {:016x}",
                p.init.to_bits(),
                match p.scope {
                    ParamScope::Layer => "layer",
                    ParamScope::Channel => "channel",
                },
                p.trainable,
                constraint,
                min.to_bits()
            ));
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use acbench_plugin_api::{Activation, ActivationDef, ParamSpec, linked_plugin};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::activation::Registry;
    use crate::error::{Error, Result};
    use crate::plugin::PluginOptions;
    use crate::plugin::check::check_activation;

    fn io(e: std::io::Error) -> Error {
        Error::Config(e.to_string())
    }

    fn scaled(init: f64) -> Vec<Activation> {
        vec![Activation::new(ActivationDef {
            name: "scaled".into(),
            summary: "k * x".into(),
            params: vec![ParamSpec::scalar("k", init)],
            formula: "k * x".into(),
        })]
    }

    fn one() -> Vec<Activation> {
        scaled(1.0)
    }

    fn two() -> Vec<Activation> {
        scaled(2.0)
    }

    fn twice() -> Vec<Activation> {
        [one(), two()].concat()
    }

    const ONE: LinkedPlugin = linked_plugin!(one);
    const TWO: LinkedPlugin = linked_plugin!(two);
    const TWICE: LinkedPlugin = linked_plugin!(twice);

    fn sha(plugin: &LinkedPlugin) -> Result<String> {
        Ok(read(plugin)?.manifest.sha256)
    }

    #[test]
    fn a_linked_plugin_is_named_by_its_crate_and_hashed_by_its_definitions_and_source() -> Result<()>
    {
        let loaded = read(&ONE)?;
        assert_eq!(loaded.manifest.path, Path::new("<linked>/acbench-engine"));
        assert_eq!(linked_name(&loaded.manifest.path), Some("acbench-engine"));
        assert_eq!(linked_name(Path::new("/lib/libx.so")), None);
        assert_eq!(loaded.manifest.activations, ["scaled"]);
        assert_eq!(loaded.manifest.sha256.len(), 64);
        assert_eq!(sha(&ONE)?, loaded.manifest.sha256, "stable");
        assert_ne!(sha(&TWO)?, loaded.manifest.sha256, "an initial value");
        // SAFETY: ONE's entry points, under another version.
        let newer = unsafe {
            LinkedPlugin::new(
                ONE.name(),
                "9.9.9",
                ONE.source(),
                ONE.entry(),
                ONE.last_error(),
            )
        };
        assert_ne!(sha(&newer)?, loaded.manifest.sha256, "the version");
        // SAFETY: ONE's entry points, with other kernel code.
        let edited = unsafe {
            LinkedPlugin::new(
                ONE.name(),
                ONE.version(),
                b"fn k() {}",
                ONE.entry(),
                ONE.last_error(),
            )
        };
        assert_ne!(sha(&edited)?, loaded.manifest.sha256, "the source");
        Ok(())
    }

    #[test]
    fn a_linked_table_that_cannot_be_built_is_refused_with_its_reason() {
        let e = read(&TWICE).map(|_| ()).expect_err("must fail").to_string();
        assert_eq!(
            e,
            "plugin <linked>/acbench-engine: its entry point returned no table: \
             activation `scaled` is exported twice"
        );
    }

    #[test]
    fn shipped_plugins_are_linked_and_recorded() -> Result<()> {
        let reg = Registry::builtin()?;
        let names: Vec<Option<&str>> = reg.plugins().iter().map(|p| linked_name(&p.path)).collect();
        assert_eq!(
            names,
            [
                Some("acbench-adaptive"),
                Some("acbench-baselines"),
                Some("acbench-per-channel"),
                Some("acbench-fcos"),
                Some("acbench-yolo"),
            ]
        );
        let detectors: Vec<&str> = reg.detectors().iter().map(Detector::name).collect();
        assert_eq!(detectors, ["fcos", "yolo"]);
        assert_eq!(reg.plugins()[3].detectors, ["fcos"]);
        assert!(reg.plugins()[3].activations.is_empty());
        for p in reg.plugins() {
            assert_eq!(p.sha256.len(), 64);
        }
        assert_eq!(reg.plugins()[0].activations, ["asigmoid", "atanh", "arelu"]);
        let kernels = reg.get("arelu")?.kernels.as_ref().map(|k| k.plugin());
        assert_eq!(kernels, Some(Path::new("<linked>/acbench-adaptive")));
        // The same identity every time, and registering again is a no-op.
        let mut again = Registry::builtin()?;
        assert_eq!(again.plugins(), reg.plugins());
        again.load_linked(&SHIPPED[1])?;
        assert_eq!(again.plugins(), reg.plugins());
        Ok(())
    }

    /// The shipped plugins' libraries, which cargo builds into the folder
    /// of this test binary (the engine's dev-dependencies).
    fn shipped_libraries() -> Result<Vec<PathBuf>> {
        let exe = std::env::current_exe().map_err(io)?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Ok(["adaptive", "baselines", "per_channel"]
            .into_iter()
            .map(|n| {
                dir.join(format!(
                    "{}acbench_plugin_{n}{}",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                ))
            })
            .collect())
    }

    #[test]
    fn shipped_detector_libraries_load_as_their_linked_detectors() -> Result<()> {
        let exe = std::env::current_exe().map_err(io)?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        let libs: Vec<PathBuf> = ["fcos", "yolo"]
            .into_iter()
            .map(|n| {
                dir.join(format!(
                    "{}acbench_detector_{n}{}",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                ))
            })
            .collect();
        let loaded = Registry::discover(&PluginOptions {
            files: libs.clone(),
            shipped: false,
            ..PluginOptions::default()
        })?;
        let linked = Registry::builtin()?;
        let describe = |r: &Registry| -> Vec<(String, Vec<String>, usize)> {
            r.detectors()
                .iter()
                .map(|d| (d.name().to_owned(), d.terms().to_vec(), d.settings().len()))
                .collect()
        };
        assert_eq!(describe(&loaded), describe(&linked));
        for (p, lib) in loaded.plugins().iter().zip(&libs) {
            assert_eq!(p.path, lib.canonicalize().map_err(io)?);
        }
        // A library beside the linked copy of its detector clashes.
        match Registry::discover(&PluginOptions {
            files: vec![libs[0].clone()],
            ..PluginOptions::shipped_only()
        }) {
            Err(Error::Plugin(PluginError::Duplicate { kind, name, .. })) => {
                assert_eq!((kind, name.as_str()), ("detector", "fcos"));
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn shipped_libraries_load_at_run_time_as_their_linked_plugins() -> Result<()> {
        let libs = shipped_libraries()?;
        let loaded = Registry::discover(&PluginOptions {
            files: libs.clone(),
            ..PluginOptions::default()
        })?;
        for (p, lib) in loaded.plugins().iter().zip(&libs) {
            assert_eq!(p.path, lib.canonicalize().map_err(io)?);
            let bytes = std::fs::read(lib).map_err(io)?;
            assert_eq!(p.sha256, hex::encode(Sha256::digest(&bytes)));
        }
        assert_eq!(loaded.plugins().len(), 3);
        // The libraries define what the linked plugins do, read the same way.
        let linked = Registry::builtin()?;
        let defs =
            |r: &Registry| -> Vec<_> { r.iter().map(|a| (a.def.clone(), a.tier())).collect() };
        assert_eq!(defs(&loaded), defs(&linked));
        for name in ["arelu", "relu"] {
            for row in check_activation(&loaded, name, 3)? {
                assert!(row.passed(), "{row:?}");
            }
        }
        // The same file again (a copy on the search path, and explicitly) is
        // skipped, not a duplicate.
        let dir = tempfile::tempdir().map_err(io)?;
        let name = libs[0].file_name().unwrap_or_default();
        std::fs::copy(&libs[0], dir.path().join(name)).map_err(io)?;
        let again = Registry::discover(&PluginOptions {
            search_path: Some(dir.path().as_os_str().to_owned()),
            files: [libs.as_slice(), &libs[1..2]].concat(),
            shipped: false,
        })?;
        let hashes = |r: &Registry| -> Vec<String> {
            r.plugins().iter().map(|p| p.sha256.clone()).collect()
        };
        assert_eq!(hashes(&again), hashes(&loaded));
        // A library beside the linked copy of its activations clashes.
        match Registry::discover(&PluginOptions {
            files: vec![libs[0].clone()],
            ..PluginOptions::shipped_only()
        }) {
            Err(Error::Plugin(PluginError::Duplicate {
                kind: "activation",
                name,
                first,
                second,
            })) => {
                assert_eq!(name, "asigmoid");
                assert_eq!(first, Path::new("<linked>/acbench-adaptive"));
                assert_eq!(second, libs[0].canonicalize().map_err(io)?);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }
}
