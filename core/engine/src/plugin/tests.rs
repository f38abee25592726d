//! Loader and fused-op tests on raw ABI tables built in this process, so
//! every malformed table can be made without compiling a library.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char};
use std::path::Path;

use acbench_plugin_api::abi::{
    self, ActivationDesc, BackwardFn, ForwardFn, Layout, ParamDesc, PluginTable,
};
use candle_core::{DType, Device, Tensor, Var};

use super::check::check_activation;
use super::*;
use crate::activation::{ActLayer, ActSpec, Registry};
use crate::error::Error;

thread_local! {
    /// The table the test entry point returns: tests run on their own
    /// threads, and `load_entry` calls the entry on the caller's thread.
    static TABLE: Cell<*const PluginTable> = const { Cell::new(std::ptr::null()) };
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

unsafe extern "C" fn entry() -> *const PluginTable {
    TABLE.with(Cell::get)
}

unsafe extern "C" fn last_error(buf: *mut c_char, cap: usize) -> usize {
    LAST_ERROR.with(|e| {
        let msg = e.borrow();
        let n = msg.len().min(cap.saturating_sub(1));
        if cap > 0 {
            // SAFETY: the host gives `cap` writable bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        msg.len()
    })
}

fn fail(msg: &str, status: i32) -> i32 {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg.to_owned());
    status
}

/// `k * x` for x >= 0, `x` else (a leaky identity), `k` per channel or per layer.
unsafe extern "C" fn scale_fwd(
    l: Layout,
    x: *const f32,
    p: *const *const f32,
    out: *mut f32,
) -> i32 {
    // SAFETY: the host's buffers, as the ABI describes them.
    let (x, out, k) = unsafe {
        (
            std::slice::from_raw_parts(x, l.len()),
            std::slice::from_raw_parts_mut(out, l.len()),
            *p,
        )
    };
    for (i, (o, &xi)) in out.iter_mut().zip(x).enumerate() {
        let c = (i / l.inner) % l.channels;
        // SAFETY: `k` has 1 or `channels` values; the test layers use per-channel.
        let kc = unsafe { *k.add(c) };
        *o = if xi >= 0.0 { kc * xi } else { xi };
    }
    abi::STATUS_OK
}

unsafe extern "C" fn scale_bwd(
    l: Layout,
    x: *const f32,
    p: *const *const f32,
    g: *const f32,
    gx: *mut f32,
    gp: *const *mut f32,
) -> i32 {
    // SAFETY: as in `scale_fwd`.
    let (x, g, gx, k, gk) = unsafe {
        (
            std::slice::from_raw_parts(x, l.len()),
            std::slice::from_raw_parts(g, l.len()),
            std::slice::from_raw_parts_mut(gx, l.len()),
            *p,
            *gp,
        )
    };
    for i in 0..l.len() {
        let c = (i / l.inner) % l.channels;
        // SAFETY: per-channel buffers of `channels` values.
        unsafe {
            if x[i] >= 0.0 {
                gx[i] = *k.add(c) * g[i];
                *gk.add(c) += x[i] * g[i];
            } else {
                gx[i] = g[i];
            }
        }
    }
    abi::STATUS_OK
}

unsafe extern "C" fn error_fwd(_: Layout, _: *const f32, _: *const *const f32, _: *mut f32) -> i32 {
    fail("the input is too spicy", abi::STATUS_ERROR)
}

unsafe extern "C" fn panic_bwd(
    _: Layout,
    _: *const f32,
    _: *const *const f32,
    _: *const f32,
    _: *mut f32,
    _: *const *mut f32,
) -> i32 {
    fail(
        "index out of bounds: the len is 3 but the index is 7",
        abi::STATUS_PANIC,
    )
}

fn leak<T>(v: Vec<T>) -> *const T {
    Box::leak(v.into_boxed_slice()).as_ptr()
}

fn param(name: &'static CStr, init: f64, scope: u32) -> ParamDesc {
    ParamDesc {
        name: name.as_ptr(),
        init,
        scope,
        trainable: 1,
        constraint: abi::CONSTRAINT_NONE,
        constraint_min: 0.0,
    }
}

fn act(
    name: &'static CStr,
    formula: &'static CStr,
    params: Vec<ParamDesc>,
    kernels: Option<(ForwardFn, BackwardFn)>,
) -> ActivationDesc {
    ActivationDesc {
        name: name.as_ptr(),
        summary: std::ptr::null(),
        formula: formula.as_ptr(),
        param_count: params.len(),
        params: leak(params),
        forward: kernels.map(|k| k.0),
        backward: kernels.map(|k| k.1),
    }
}

fn table(acts: Vec<ActivationDesc>) -> PluginTable {
    PluginTable {
        abi_version: abi::ABI_VERSION,
        struct_size: size_of::<PluginTable>() as u32,
        activation_desc_size: size_of::<ActivationDesc>() as u32,
        param_desc_size: size_of::<ParamDesc>() as u32,
        activation_count: acts.len(),
        activations: leak(acts),
        last_error,
    }
}

fn scale_act(name: &'static CStr, kernels: (ForwardFn, BackwardFn)) -> ActivationDesc {
    act(
        name,
        c"where(x >= 0, k * x, x)",
        vec![param(c"k", 1.5, abi::SCOPE_CHANNEL)],
        Some(kernels),
    )
}

const ORIGIN: &str = "/plugins/libtest_plugin.so";

fn load_into(reg: &mut Registry, origin: &str, t: PluginTable) -> crate::Result<()> {
    TABLE.with(|c| c.set(Box::leak(Box::new(t))));
    // SAFETY: the test tables follow the ABI and are leaked.
    unsafe { reg.load_entry(Path::new(origin), entry) }
}

fn load(t: PluginTable) -> crate::Result<Registry> {
    let mut reg = Registry::new();
    load_into(&mut reg, ORIGIN, t)?;
    Ok(reg)
}

fn load_err(t: PluginTable) -> String {
    match load(t) {
        Ok(_) => panic!("the table was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_good_table_loads_and_its_kernels_match_the_formula() -> crate::Result<()> {
    let reg = load(table(vec![scale_act(
        c"leaky_scale",
        (scale_fwd, scale_bwd),
    )]))?;
    let a = reg.get("leaky_scale")?;
    assert_eq!(a.tier(), "formula+fused");
    assert_eq!(a.plugin.as_deref(), Some(Path::new(ORIGIN)));
    assert_eq!(
        a.def.params[0].scope,
        acbench_plugin_api::ParamScope::Channel
    );
    let rows = check_activation(&reg, "leaky_scale", 1)?;
    let checks: Vec<&str> = rows.iter().map(|r| r.check.as_str()).collect();
    assert_eq!(
        checks,
        [
            "fused values",
            "fused grad x",
            "fused grad k",
            "finite diff x",
            "finite diff k"
        ]
    );
    for r in &rows {
        assert!(r.passed(), "{r:?}");
    }
    Ok(())
}

/// A kernel that computes the wrong gradient is caught by the check.
#[test]
fn check_catches_a_wrong_backward() -> crate::Result<()> {
    unsafe extern "C" fn bwd_double(
        l: Layout,
        x: *const f32,
        p: *const *const f32,
        g: *const f32,
        gx: *mut f32,
        gp: *const *mut f32,
    ) -> i32 {
        // SAFETY: forwards the host's arguments unchanged.
        let s = unsafe { scale_bwd(l, x, p, g, gx, gp) };
        // SAFETY: `gx` has `l.len()` values.
        for v in unsafe { std::slice::from_raw_parts_mut(gx, l.len()) } {
            *v *= 2.0;
        }
        s
    }
    let reg = load(table(vec![scale_act(c"wrong", (scale_fwd, bwd_double))]))?;
    let rows = check_activation(&reg, "wrong", 1)?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.check.as_str())
        .collect();
    assert_eq!(failed, ["fused grad x"]);
    Ok(())
}

#[test]
fn fused_and_formula_paths_agree_inside_a_layer_and_split_across_threads() -> crate::Result<()> {
    let reg = load(table(vec![scale_act(
        c"leaky_scale",
        (scale_fwd, scale_bwd),
    )]))?;
    let spec = ActSpec::parse("leaky_scale:k=0.7")?;
    let (layer, params) = ActLayer::new("a", None, &reg, &spec, 3, DType::F32, &Device::Cpu)?;
    // Big enough for several chunks; a non-contiguous (transposed) input.
    // From the seeded generator (candle's `randn` cannot be seeded).
    let values: Vec<f32> = {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        (0..40 * 3 * 30 * 12)
            .map(|_| StandardNormal.sample(&mut r))
            .collect()
    };
    let x = Tensor::from_vec(values, (40, 3, 30, 12), &Device::Cpu)?.transpose(2, 3)?;
    assert!(!x.is_contiguous());
    assert!(layer.fused_applies(&x));
    let x = Var::from_tensor(&x)?;
    let run = |fused: bool| -> crate::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let y = if fused {
            layer.forward_fused(x.as_tensor())?
        } else {
            layer.forward_formula(x.as_tensor())?
        };
        let g = y.sqr()?.sum_all()?.backward()?;
        let get = |t: &Tensor| -> crate::Result<Vec<f32>> {
            Ok(g.get(t)
                .ok_or_else(|| Error::Config("missing gradient".into()))?
                .flatten_all()?
                .to_vec1()?)
        };
        Ok((
            y.flatten_all()?.to_vec1()?,
            get(x.as_tensor())?,
            get(params[0].var.as_tensor())?,
        ))
    };
    let (fused, formula) = (run(true)?, run(false)?);
    let close = |a: &[f32], b: &[f32], tol: f32| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(u, v)| (u - v).abs() <= tol * (1.0 + v.abs()))
    };
    assert!(close(&fused.0, &formula.0, 1e-6));
    assert!(close(&fused.1, &formula.1, 1e-6));
    assert!(
        close(&fused.2, &formula.2, 1e-4),
        "{:?} {:?}",
        fused.2,
        formula.2
    );
    // f64 has no kernels: the formula serves it.
    let (l64, _) = ActLayer::new("b", None, &reg, &spec, 3, DType::F64, &Device::Cpu)?;
    assert!(!l64.fused_applies(&x.as_tensor().to_dtype(DType::F64)?));
    Ok(())
}

#[test]
fn kernel_errors_and_panics_become_errors_naming_the_plugin() -> crate::Result<()> {
    let reg = load(table(vec![
        scale_act(c"fails", (error_fwd, scale_bwd)),
        scale_act(c"panics", (scale_fwd, panic_bwd)),
    ]))?;
    let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
    let (l, _) = ActLayer::new(
        "a",
        None,
        &reg,
        &ActSpec::parse("fails")?,
        3,
        DType::F32,
        &Device::Cpu,
    )?;
    let msg = l
        .forward(&x)
        .map(|_| ())
        .expect_err("must fail")
        .to_string();
    assert_eq!(
        msg,
        format!(
            "plugin {ORIGIN}, activation `fails`: the forward kernel failed (status 1): the input is too spicy"
        )
    );
    let (l, _) = ActLayer::new(
        "a",
        None,
        &reg,
        &ActSpec::parse("panics")?,
        3,
        DType::F32,
        &Device::Cpu,
    )?;
    let y = l.forward(&x)?;
    let msg = y
        .sum_all()?
        .backward()
        .map(|_| ())
        .expect_err("must fail")
        .to_string();
    assert!(
        msg.contains(&format!(
            "plugin {ORIGIN}, activation `panics`: the backward kernel panicked: index out of bounds"
        )),
        "{msg}"
    );
    // The formula path is unaffected, and the check reports the failure as an error.
    let mut reg = reg;
    reg.set_fused(false);
    let (l, _) = ActLayer::new(
        "a",
        None,
        &reg,
        &ActSpec::parse("fails")?,
        3,
        DType::F32,
        &Device::Cpu,
    )?;
    l.forward(&x)?;
    assert!(check_activation(&reg, "fails", 0).is_err());
    Ok(())
}

#[test]
fn version_and_sizes_are_checked_first() {
    let mut t = table(vec![]);
    t.abi_version = 99;
    // Nothing else is read: a garbage pointer must not matter.
    t.activations = std::ptr::dangling();
    t.activation_count = usize::MAX;
    assert_eq!(
        load_err(t),
        format!(
            "plugin {ORIGIN}: built for plugin ABI version 99, but this acbench speaks version {}; \
             rebuild the plugin against acbench-plugin-api {}",
            abi::ABI_VERSION,
            env!("CARGO_PKG_VERSION")
        )
    );
    let mut t = table(vec![]);
    t.struct_size = 8;
    assert!(load_err(t).contains("its PluginTable is 8 bytes but this acbench's is"));
    let mut t = table(vec![]);
    t.param_desc_size += 8;
    assert!(load_err(t).contains("its ParamDesc is"));
    TABLE.with(|c| c.set(std::ptr::null()));
    // SAFETY: the entry returns null, which the loader must refuse.
    let e = unsafe { Registry::new().load_entry(Path::new(ORIGIN), entry) };
    assert!(
        e.map(|_| ())
            .expect_err("must fail")
            .to_string()
            .contains("returned no table"),
    );
}

#[test]
fn malformed_tables_are_refused_with_reasons() {
    let cases: Vec<(PluginTable, &str)> = vec![
        (table(vec![]), "it defines no activations"),
        (
            {
                let mut t = table(vec![]);
                t.activation_count = 2;
                t.activations = std::ptr::null();
                t
            },
            "its activation list is a null or misaligned pointer",
        ),
        (
            table(vec![act(c"bad name", c"x", vec![], None)]),
            "activation name `bad name` is not a valid name",
        ),
        (
            table(vec![act(c"\xff\xfe", c"x", vec![], None)]),
            "the name of activation #0 is not valid UTF-8",
        ),
        (
            table(vec![ActivationDesc {
                formula: std::ptr::null(),
                ..act(c"f", c"x", vec![], None)
            }]),
            "the formula of `f` is a null pointer",
        ),
        (
            table(vec![ActivationDesc {
                backward: None,
                ..scale_act(c"half", (scale_fwd, scale_bwd))
            }]),
            "activation `half` has a forward kernel without a backward one",
        ),
        (
            table(vec![act(c"f", c"x", vec![param(c"k", 1.0, 7)], None)]),
            "activation `f`, parameter `k`: unknown scope 7",
        ),
        (
            table(vec![act(
                c"f",
                c"x",
                vec![param(c"x", 1.0, abi::SCOPE_LAYER)],
                None,
            )]),
            "activation `f`, parameter `x`: not a valid parameter name",
        ),
        (
            table(vec![act(
                c"f",
                c"x",
                vec![ParamDesc {
                    constraint: abi::CONSTRAINT_POSITIVE,
                    constraint_min: -1.0,
                    ..param(c"k", 1.0, abi::SCOPE_LAYER)
                }],
                None,
            )]),
            "the lower bound -1 of a positive parameter must be a positive number",
        ),
        (
            table(vec![
                act(c"f", c"x", vec![], None),
                act(c"f", c"x", vec![], None),
            ]),
            "it defines activation `f` twice",
        ),
    ];
    for (t, want) in cases {
        let got = load_err(t);
        assert!(got.starts_with(&format!("plugin {ORIGIN}: ")), "{got}");
        assert!(got.contains(want), "{got}\nwanted: {want}");
    }
}

#[test]
fn formula_errors_name_plugin_activation_and_column() {
    let got = load_err(table(vec![act(
        c"broken",
        c"k * x +",
        vec![param(c"k", 1.0, abi::SCOPE_LAYER)],
        None,
    )]));
    assert!(
        got.starts_with(&format!(
            "plugin {ORIGIN}, activation `broken`: formula error at column 8: "
        )),
        "{got}"
    );
    assert!(got.ends_with("\n    k * x +\n           ^"), "{got:?}");
}

#[test]
fn duplicate_names_across_plugins_name_both_files() -> crate::Result<()> {
    let mut reg = Registry::new();
    load_into(
        &mut reg,
        "/a/liba.so",
        table(vec![act(c"same", c"x", vec![], None)]),
    )?;
    let e = load_into(
        &mut reg,
        "/b/libb.so",
        table(vec![
            act(c"other", c"x", vec![], None),
            act(c"same", c"-x", vec![], None),
        ]),
    );
    assert_eq!(
        e.map(|_| ()).expect_err("must fail").to_string(),
        "activation `same` is defined twice: by /a/liba.so and by /b/libb.so; remove one of the plugins"
    );
    // All or nothing: `other` was not added either.
    assert_eq!(reg.names().collect::<Vec<_>>(), ["same"]);
    Ok(())
}

#[test]
fn missing_and_non_library_files() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
    let missing = dir.path().join("libnothing.so");
    let e = Registry::new()
        .load_plugin(&missing)
        .map(|_| ())
        .expect_err("must fail");
    assert_eq!(
        e.to_string(),
        format!("plugin {}: no such file", missing.display())
    );
    let junk = dir.path().join("libjunk.so");
    std::fs::write(&junk, b"not an ELF file").map_err(|e| Error::Config(e.to_string()))?;
    let e = Registry::new()
        .load_plugin(&junk)
        .map(|_| ())
        .expect_err("must fail")
        .to_string();
    assert!(e.contains("cannot load the library"), "{e}");
    assert!(e.contains("libjunk.so"), "{e}");
    // A search-path entry that does not exist is an error too.
    let opts = PluginOptions {
        search_path: Some(missing.clone().into_os_string()),
        ..PluginOptions::default()
    };
    assert!(matches!(
        Registry::discover(&opts),
        Err(Error::Plugin(PluginError::NotFound { .. }))
    ));
    Ok(())
}

/// Every shipped activation's kernels agree with its formula, and the
/// formula's gradients with finite differences.
#[test]
fn shipped_plugins_pass_their_check() -> crate::Result<()> {
    let reg = Registry::builtin()?;
    let mut failures = Vec::new();
    for name in reg.names() {
        let act = reg.get(name)?;
        // The per-channel variants are formula-only (tier 1) by design.
        assert_eq!(
            act.kernels.is_some(),
            !name.ends_with("_channel"),
            "{name}: tier"
        );
        for row in check_activation(&reg, name, 7)? {
            if !row.passed() {
                failures.push(format!("{row:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
