use super::*;
use crate::ops::gradcheck;
use acbench_dsl::ir::Padding;
use candle_core::{Device, Var};

fn pool(
    kind: PoolKind,
    k: (usize, usize),
    s: (usize, usize),
    pad: [usize; 4],
    incl: bool,
) -> Pool2d {
    Pool2d {
        kind,
        kernel: k,
        stride: s,
        padding: Padding {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        },
        count_include_pad: incl,
    }
}

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).expect("shape")
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.flatten_all().and_then(|t| t.to_vec1()).expect("vec")
}

type PoolFn = fn(&Tensor, &Pool2d) -> Result<Tensor>;
const PATHS: [PoolFn; 2] = [pool2d_cpu, pool2d_generic];

#[test]
fn max_and_avg_forward_by_hand() -> Result<()> {
    // 3x3 input 1..9, kernel 2, stride 1, padding 1 on the bottom/right only.
    let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
    let max = pool(PoolKind::Max, (2, 2), (1, 1), [0, 1, 0, 1], false);
    let avg = pool(PoolKind::Avg, (2, 2), (1, 1), [0, 1, 0, 1], false);
    let avg_incl = pool(PoolKind::Avg, (2, 2), (1, 1), [0, 1, 0, 1], true);
    for f in PATHS {
        assert_eq!(vals(&f(&x, &max)?), [5., 6., 6., 8., 9., 9., 8., 9., 9.]);
        assert_eq!(
            vals(&f(&x, &avg)?),
            [3., 4., 4.5, 6., 7., 7.5, 7.5, 8.5, 9.]
        );
        assert_eq!(
            vals(&f(&x, &avg_incl)?),
            [3., 4., 2.25, 6., 7., 3.75, 3.75, 4.25, 2.25]
        );
    }
    // Negative values: padding must not win a max (it would give 0).
    let neg = x.neg()?;
    let max_pad = pool(PoolKind::Max, (3, 3), (2, 2), [1, 1, 1, 1], false);
    for f in PATHS {
        assert_eq!(vals(&f(&neg, &max_pad)?), [-1., -2., -4., -5.]);
    }
    Ok(())
}

#[test]
fn kernel_larger_than_stride_gradients() -> Result<()> {
    // AlexNet/GoogLeNet shapes: 3x3 stride 2 and 3x3 stride 1 pad 1.
    let cases = [
        pool(PoolKind::Max, (3, 3), (2, 2), [0, 0, 0, 0], false),
        pool(PoolKind::Max, (3, 3), (1, 1), [1, 1, 1, 1], false),
        pool(PoolKind::Max, (2, 3), (1, 2), [1, 0, 0, 2], false),
        pool(PoolKind::Avg, (3, 3), (2, 2), [1, 0, 1, 0], false),
        pool(PoolKind::Avg, (3, 3), (1, 1), [1, 1, 1, 1], true),
        pool(PoolKind::Avg, (2, 3), (2, 1), [0, 1, 2, 0], false),
    ];
    for (i, p) in cases.iter().enumerate() {
        let x = gradcheck::rand(&[2, 2, 5, 6], -1.0, 1.0, i as u64);
        for f in PATHS {
            gradcheck::check(|a| f(&a[0], p), std::slice::from_ref(&x), 1e-6);
        }
    }
    Ok(())
}

#[test]
fn ties_give_the_whole_gradient_to_the_first_maximum() -> Result<()> {
    // One 2x2 window of equal values: all gradient to the top-left cell
    // (PyTorch and TensorFlow agree; candle splits it).
    let p = pool(PoolKind::Max, (2, 2), (2, 2), [0, 0, 0, 0], false);
    for f in PATHS {
        let x = Var::from_tensor(&t(&[3., 3., 3., 3.], &[1, 1, 2, 2]))?;
        let y = f(x.as_tensor(), &p)?;
        let g = y.sum_all()?.backward()?;
        let gx = g.get(x.as_tensor()).map(vals);
        assert_eq!(gx, Some(vec![1., 0., 0., 0.]));
        // Overlapping windows that share the maximum accumulate.
        let p2 = pool(PoolKind::Max, (2, 2), (1, 1), [0, 0, 0, 0], false);
        let x2 = Var::from_tensor(&t(&[1., 2., 1., 0., 9., 0., 1., 2., 1.], &[1, 1, 3, 3]))?;
        let g2 = f(x2.as_tensor(), &p2)?.sum_all()?.backward()?;
        assert_eq!(
            g2.get(x2.as_tensor()).map(vals),
            Some(vec![0., 0., 0., 0., 4., 0., 0., 0., 0.])
        );
    }
    Ok(())
}

#[test]
fn cpu_and_generic_agree_in_f32() -> Result<()> {
    let x = gradcheck::rand(&[2, 3, 7, 5], -2.0, 2.0, 5).to_dtype(DType::F32)?;
    for p in [
        pool(PoolKind::Max, (3, 3), (2, 2), [1, 1, 1, 1], false),
        pool(PoolKind::Avg, (3, 2), (2, 1), [1, 2, 0, 1], false),
    ] {
        let (va, vb) = (Var::from_tensor(&x)?, Var::from_tensor(&x)?);
        let (ya, yb) = (
            pool2d_cpu(va.as_tensor(), &p)?,
            pool2d_generic(vb.as_tensor(), &p)?,
        );
        let w = gradcheck::rand(ya.dims(), -1.0, 1.0, 1).to_dtype(DType::F32)?;
        let ga = (&ya * &w)?.sum_all()?.backward()?;
        let gb = (&yb * &w)?.sum_all()?.backward()?;
        let d = (ya - yb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "values differ by {d}");
        let (ga, gb) = (ga.get(va.as_tensor()), gb.get(vb.as_tensor()));
        let (Some(ga), Some(gb)) = (ga, gb) else {
            panic!("missing gradient")
        };
        let d = (ga - gb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "gradients differ by {d}");
    }
    Ok(())
}

/// Both max-pool loops (2x2/2 and general) against the cell-by-cell
/// first-maximum rule, with ties and NaN.
#[test]
fn max_pool_kernel_matches_the_reference_rule() -> Result<()> {
    let (h, w) = (6, 8);
    let mut x: Vec<f32> = (0..3 * h * w).map(|v| ((v * 37) % 11) as f32).collect();
    x[5] = f32::NAN;
    for (k, s, pad) in [(2, 2, 0), (3, 2, 1), (2, 1, 0)] {
        let p = pool(PoolKind::Max, (k, k), (s, s), [pad; 4], false);
        let g = PoolGeom::new(&p, h, w)?;
        let mut y = vec![0f32; 3 * g.oh * g.ow];
        let mut idx = vec![0u32; y.len()];
        max_pool_forward(&g, &x, &mut y, &mut idx);
        for plane in 0..3 {
            let xs = &x[plane * h * w..][..h * w];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let at = plane * g.oh * g.ow + oy * g.ow + ox;
                    let want = g.argmax(xs, oy, ox);
                    assert_eq!(idx[at] as usize, want, "k{k} s{s} p{pad} ({oy},{ox})");
                    assert_eq!(y[at].to_bits(), xs[want].to_bits());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn global_average_pool_cpu_and_generic() -> Result<()> {
    let x = gradcheck::rand(&[2, 3, 4, 5], -1.0, 1.0, 11);
    gradcheck::check(|a| global_avg_pool(&a[0]), std::slice::from_ref(&x), 1e-6);
    let d = (global_avg_pool(&x)? - x.mean((2, 3))?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    assert!(d < 1e-12);
    Ok(())
}

#[test]
fn bad_geometry_is_an_error() {
    let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).expect("zeros");
    assert!(pool2d(&x, &pool(PoolKind::Max, (2, 2), (0, 1), [0; 4], false)).is_err());
    assert!(
        pool2d(
            &x,
            &pool(PoolKind::Max, (2, 2), (1, 1), [2, 0, 0, 0], false)
        )
        .is_err()
    );
    assert!(pool2d(&x, &pool(PoolKind::Avg, (5, 5), (1, 1), [0; 4], false)).is_err());
}
