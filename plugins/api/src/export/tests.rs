use std::ffi::CStr;

use super::*;
use crate::abi::{
    CONSTRAINT_POSITIVE, Layout, SCOPE_CHANNEL, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use crate::kernel::{ParamGrad, param_at};
use crate::{Constraint, ParamSpec};

/// `k * x + bias`, `k` per channel, `bias` per layer.
struct Affine;

impl FusedKernel for Affine {
    const SCOPES: &'static [ParamScope] = &[ParamScope::Channel, ParamScope::Layer];

    fn forward(layout: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        for (c, r) in layout.rows() {
            let (k, b) = (param_at(p[0], c), param_at(p[1], c));
            for (o, &xi) in out[r.clone()].iter_mut().zip(&x[r]) {
                *o = k * xi + b;
            }
        }
        Ok(())
    }

    fn backward(
        layout: Layout,
        x: &[f32],
        p: &[&[f32]],
        g: &[f32],
        gx: &mut [f32],
        gp: &mut [&mut [f32]],
    ) -> Result<(), String> {
        let [gk, gb] = gp else {
            return Err("two parameters expected".into());
        };
        let (mut gk, mut gb) = (ParamGrad::new(gk), ParamGrad::new(gb));
        for (c, r) in layout.rows() {
            let k = param_at(p[0], c);
            let (mut sk, mut sb) = (0.0f64, 0.0f64);
            for ((d, &xi), &gi) in gx[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&g[r]) {
                *d = gi * k;
                sk += f64::from(gi * xi);
                sb += f64::from(gi);
            }
            gk.add(c, sk);
            gb.add(c, sb);
        }
        Ok(())
    }
}

struct Panics;

impl FusedKernel for Panics {
    const SCOPES: &'static [ParamScope] = &[];

    fn forward(_: Layout, _: &[f32], _: &[&[f32]], _: &mut [f32]) -> Result<(), String> {
        panic!("boom in forward")
    }

    fn backward(
        _: Layout,
        _: &[f32],
        _: &[&[f32]],
        _: &[f32],
        _: &mut [f32],
        _: &mut [&mut [f32]],
    ) -> Result<(), String> {
        panic!("boom {} in backward", 42)
    }
}

struct Fails;

impl FusedKernel for Fails {
    const SCOPES: &'static [ParamScope] = &[];

    fn forward(_: Layout, _: &[f32], _: &[&[f32]], _: &mut [f32]) -> Result<(), String> {
        Err("forward refused".into())
    }

    fn backward(
        _: Layout,
        _: &[f32],
        _: &[&[f32]],
        _: &[f32],
        _: &mut [f32],
        _: &mut [&mut [f32]],
    ) -> Result<(), String> {
        Err("backward refused".into())
    }
}

fn def(name: &str, params: Vec<ParamSpec>, formula: &str) -> ActivationDef {
    ActivationDef {
        name: name.into(),
        summary: format!("test {name}"),
        params,
        formula: formula.into(),
    }
}

fn affine_def() -> ActivationDef {
    let mut k = ParamSpec::scalar("k", 2.0).positive(0.5);
    k.scope = ParamScope::Channel;
    def(
        "affine",
        vec![k, ParamSpec::fixed("bias", -1.0)],
        "k * x + bias",
    )
}

fn test_activations() -> Vec<Activation> {
    vec![
        Activation::new(affine_def()).with_kernel::<Affine>(),
        Activation::new(def("panics", vec![], "x")).with_kernel::<Panics>(),
        Activation::new(def("fails", vec![], "x")).with_kernel::<Fails>(),
        Activation::new(def("formula_only", vec![], "tanh(x)")),
    ]
}

crate::export_plugin!(test_activations);

fn c_str(p: *const c_char) -> String {
    // SAFETY: the table's strings are leaked NUL-terminated copies.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn table() -> &'static PluginTable {
    // SAFETY: the entry is safe to call; its table lives forever.
    let t = unsafe { acbench_plugin_entry() };
    assert!(!t.is_null(), "{}", kernel::last_error_message());
    // SAFETY: non-null and leaked.
    unsafe { &*t }
}

fn activation(name: &str) -> &'static ActivationDesc {
    let t = table();
    // SAFETY: `activation_count` descriptors at `activations`.
    let all = unsafe { std::slice::from_raw_parts(t.activations, t.activation_count) };
    all.iter()
        .find(|a| c_str(a.name) == name)
        .unwrap_or_else(|| panic!("no activation {name}"))
}

/// The last error through the table's C function, with a small buffer
/// first to exercise truncation.
fn table_error() -> String {
    let t = table();
    let mut small = [0 as c_char; 5];
    // SAFETY: the buffer holds 5 bytes.
    let len = unsafe { (t.last_error)(small.as_mut_ptr(), small.len()) };
    assert_eq!(small[4], 0, "NUL-terminated within the buffer");
    let mut buf = vec![0 as c_char; len + 1];
    // SAFETY: the buffer holds len + 1 bytes.
    let again = unsafe { (t.last_error)(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(again, len);
    c_str(buf.as_ptr())
}

#[test]
fn entry_describes_every_activation() {
    let t = table();
    assert_eq!(t.abi_version, ABI_VERSION);
    assert_eq!(t.struct_size as usize, size_of::<PluginTable>());
    assert_eq!(t.activation_desc_size as usize, size_of::<ActivationDesc>());
    assert_eq!(t.param_desc_size as usize, size_of::<ParamDesc>());
    assert_eq!(t.activation_count, 4);
    // SAFETY: the entry is safe to call.
    assert!(
        std::ptr::eq(t, unsafe { acbench_plugin_entry() }),
        "built once"
    );

    let a = activation("affine");
    assert_eq!(c_str(a.summary), "test affine");
    assert_eq!(c_str(a.formula), "k * x + bias");
    assert_eq!(a.param_count, 2);
    // SAFETY: `param_count` descriptors at `params`.
    let ps = unsafe { std::slice::from_raw_parts(a.params, a.param_count) };
    assert_eq!(c_str(ps[0].name), "k");
    assert_eq!(ps[0].init, 2.0);
    assert_eq!(ps[0].scope, SCOPE_CHANNEL);
    assert_eq!(
        (ps[0].constraint, ps[0].constraint_min),
        (CONSTRAINT_POSITIVE, 0.5)
    );
    assert_eq!(ps[0].trainable, 1);
    assert_eq!(c_str(ps[1].name), "bias");
    assert_eq!(ps[1].trainable, 0);
    assert_eq!(ParamScope::from_raw(ps[1].scope), Ok(ParamScope::Layer));
    assert_eq!(
        Constraint::from_raw(ps[0].constraint, ps[0].constraint_min),
        Ok(Constraint::Positive(0.5))
    );
    assert!(a.forward.is_some() && a.backward.is_some());

    let f = activation("formula_only");
    assert!(f.forward.is_none() && f.backward.is_none());
    assert_eq!(f.param_count, 0);
}

#[test]
fn shims_run_kernels_on_raw_buffers() {
    let a = activation("affine");
    let (Some(fwd), Some(bwd)) = (a.forward, a.backward) else {
        panic!("kernels expected");
    };
    // outer 2, channels 2, inner 3: k per channel, bias per layer.
    let layout = Layout {
        outer: 2,
        channels: 2,
        inner: 3,
    };
    let x: Vec<f32> = (0..12).map(|i| i as f32 - 5.0).collect();
    let k = [2.0f32, -0.5];
    let bias = [1.0f32];
    let params = [k.as_ptr(), bias.as_ptr()];
    let mut out = vec![0.0f32; 12];
    // SAFETY: every buffer is sized for `layout`.
    let status = unsafe { fwd(layout, x.as_ptr(), params.as_ptr(), out.as_mut_ptr()) };
    assert_eq!(status, STATUS_OK);
    for (i, (&o, &xi)) in out.iter().zip(&x).enumerate() {
        let c = (i / 3) % 2;
        assert_eq!(o, k[c] * xi + 1.0);
    }

    let g: Vec<f32> = (0..12).map(|i| 0.25 * i as f32).collect();
    let mut gx = vec![0.0f32; 12];
    let (mut gk, mut gb) = ([0.0f32; 2], [0.0f32]);
    let grads = [gk.as_mut_ptr(), gb.as_mut_ptr()];
    // SAFETY: as above; gradient buffers are distinct.
    let status = unsafe {
        bwd(
            layout,
            x.as_ptr(),
            params.as_ptr(),
            g.as_ptr(),
            gx.as_mut_ptr(),
            grads.as_ptr(),
        )
    };
    assert_eq!(status, STATUS_OK);
    let mut want_k = [0.0f32; 2];
    for i in 0..12 {
        let c = (i / 3) % 2;
        assert_eq!(gx[i], g[i] * k[c]);
        want_k[c] += g[i] * x[i];
    }
    assert_eq!(gk, want_k);
    assert_eq!(gb[0], g.iter().sum::<f32>());
}

#[test]
fn a_panicking_kernel_reports_status_panic_with_its_message() {
    let a = activation("panics");
    let (Some(fwd), Some(bwd)) = (a.forward, a.backward) else {
        panic!("kernels expected");
    };
    let layout = Layout {
        outer: 1,
        channels: 1,
        inner: 2,
    };
    let x = [1.0f32, 2.0];
    let mut out = [0.0f32; 2];
    // SAFETY: buffers sized for `layout`; no parameters.
    let status = unsafe { fwd(layout, x.as_ptr(), std::ptr::null(), out.as_mut_ptr()) };
    assert_eq!(status, STATUS_PANIC);
    let msg = table_error();
    assert!(
        msg.contains("boom in forward") && msg.contains("Panics"),
        "{msg}"
    );

    let mut gx = [0.0f32; 2];
    // SAFETY: as above.
    let status = unsafe {
        bwd(
            layout,
            x.as_ptr(),
            std::ptr::null(),
            x.as_ptr(),
            gx.as_mut_ptr(),
            std::ptr::null(),
        )
    };
    assert_eq!(status, STATUS_PANIC);
    assert!(table_error().contains("boom 42 in backward"));
}

#[test]
fn an_erroring_kernel_reports_status_error_with_its_message() {
    let a = activation("fails");
    let (Some(fwd), Some(bwd)) = (a.forward, a.backward) else {
        panic!("kernels expected");
    };
    let layout = Layout {
        outer: 1,
        channels: 1,
        inner: 1,
    };
    let x = [1.0f32];
    let mut out = [0.0f32];
    // SAFETY: buffers sized for `layout`.
    let status = unsafe { fwd(layout, x.as_ptr(), std::ptr::null(), out.as_mut_ptr()) };
    assert_eq!(status, STATUS_ERROR);
    assert_eq!(table_error(), "forward refused");
    // SAFETY: as above.
    let status = unsafe {
        bwd(
            layout,
            x.as_ptr(),
            std::ptr::null(),
            x.as_ptr(),
            out.as_mut_ptr(),
            std::ptr::null(),
        )
    };
    assert_eq!(status, STATUS_ERROR);
    assert_eq!(table_error(), "backward refused");
}

#[test]
fn null_buffers_are_errors_not_crashes() {
    let a = activation("affine");
    let Some(fwd) = a.forward else {
        panic!("kernel expected");
    };
    let layout = Layout {
        outer: 1,
        channels: 2,
        inner: 1,
    };
    let x = [1.0f32, 2.0];
    let mut out = [0.0f32; 2];
    // SAFETY: a null parameter array is what is being tested; the shim
    // must refuse it before reading.
    let status = unsafe { fwd(layout, x.as_ptr(), std::ptr::null(), out.as_mut_ptr()) };
    assert_eq!(status, STATUS_ERROR);
    assert!(table_error().contains("null parameter array"));
    // Empty buffers may be null.
    let empty = Layout {
        outer: 0,
        channels: 2,
        inner: 1,
    };
    let k = [1.0f32, 1.0];
    let bias = [0.0f32];
    let params = [k.as_ptr(), bias.as_ptr()];
    // SAFETY: no element is read or written.
    let status = unsafe {
        fwd(
            empty,
            std::ptr::null(),
            params.as_ptr(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_OK);
}

#[test]
fn time_exported_runs_kernels_and_reports_failures() {
    use crate::testing::time_exported;
    let layout = Layout {
        outer: 2,
        channels: 3,
        inner: 4,
    };
    // SAFETY: descriptors of the table `export_plugin!` built.
    let timed = unsafe { time_exported(activation("affine"), layout, 2) };
    assert!(matches!(timed, Ok(Some(_))), "{timed:?}");
    // SAFETY: as above.
    let none = unsafe { time_exported(activation("formula_only"), layout, 2) };
    assert_eq!(none, Ok(None));
    // SAFETY: as above.
    let failed = unsafe { time_exported(activation("fails"), layout, 2) };
    assert_eq!(failed, Err(format!("kernel status {STATUS_ERROR}")));
}

#[test]
fn invalid_definitions_refuse_to_build() {
    let mismatch = Activation::new(def("m", vec![ParamSpec::scalar("k", 1.0)], "k * x"))
        .with_kernel::<Affine>();
    let err = build_table(&[mismatch])
        .map(|_| ())
        .expect_err("must be refused");
    assert!(
        err.contains("activation `m`") && err.contains("Affine"),
        "{err}"
    );

    let twice = || Activation::new(def("same", vec![], "x"));
    let err = build_table(&[twice(), twice()])
        .map(|_| ())
        .expect_err("must be refused");
    assert_eq!(err, "activation `same` is exported twice");

    let nul = Activation::new(def("bad\0name", vec![], "x"));
    assert!(
        build_table(&[nul])
            .map(|_| ())
            .expect_err("must be refused")
            .contains("NUL")
    );

    fn panicking() -> Vec<Activation> {
        panic!("no activations today")
    }
    let cell = TableCell::new();
    assert!(cell.get_or_build(panicking).is_null());
    assert!(kernel::last_error_message().contains("no activations today"));
    assert!(
        cell.get_or_build(test_activations).is_null(),
        "failure is remembered"
    );
}
