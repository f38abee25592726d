use super::*;
use crate::ops::gradcheck;
use acbench_dsl::ir::Padding;
use candle_core::Device;

fn conv(
    cin: usize,
    cout: usize,
    k: (usize, usize),
    s: (usize, usize),
    pad: [usize; 4],
    d: (usize, usize),
    groups: usize,
) -> Conv2d {
    Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel: k,
        stride: s,
        padding: Padding {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        },
        dilation: d,
        groups,
        bias: true,
    }
}

#[test]
fn forward_by_hand() -> Result<()> {
    // 1 channel 3x3 input, 2x2 kernel of ones, stride 2, padding bottom/right 1 (TF SAME).
    let x = Tensor::from_vec(
        (1..=9).map(f64::from).collect::<Vec<_>>(),
        (1, 1, 3, 3),
        &Device::Cpu,
    )?;
    let w = Tensor::ones((1, 1, 2, 2), candle_core::DType::F64, &Device::Cpu)?;
    let b = Tensor::new(&[0.5f64], &Device::Cpu)?;
    for f in [conv2d_cpu, conv2d_generic] {
        let same = conv(1, 1, (2, 2), (2, 2), [0, 1, 0, 1], (1, 1), 1);
        let y = f(&x, &w, Some(&b), &same)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [12.5, 9.5, 15.5, 9.5]);
        // Per-axis stride (1, 2) and dilation (2, 1): rows 0 and 2, columns
        // (0, 1) and (2, pad): 1+2+7+8 = 18, 3+0+9+0 = 12.
        let odd = conv(1, 1, (2, 2), (1, 2), [0, 0, 0, 1], (2, 1), 1);
        let y = f(&x, &w, None, &odd)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [18.0, 12.0]);
    }
    Ok(())
}

/// Largest |a - b| / (1 + |b|) over two tensors of the same shape.
fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f32> = a.flatten_all().and_then(|t| t.to_vec1()).expect("a");
    let b: Vec<f32> = b.flatten_all().and_then(|t| t.to_vec1()).expect("b");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// The gemm kernels against candle's own `conv2d` (through the generic
/// wrapper) in f32 at realistic sizes: values and all three gradients.
#[test]
fn cpu_kernels_match_candle_conv2d() -> Result<()> {
    let cases = [
        // (conv, input dims): 3x3 same, first layer; strided; 1x1 direct;
        // 1x1 strided projection; grouped; dilated; batch smaller than
        // the thread count.
        (
            conv(3, 16, (3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 1),
            [5, 3, 12, 12],
        ),
        (
            conv(8, 16, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
            [4, 8, 11, 11],
        ),
        (
            conv(16, 8, (1, 1), (1, 1), [0, 0, 0, 0], (1, 1), 1),
            [3, 16, 7, 7],
        ),
        (
            conv(8, 16, (1, 1), (2, 2), [0, 0, 0, 0], (1, 1), 1),
            [3, 8, 8, 8],
        ),
        (
            conv(8, 12, (3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 4),
            [2, 8, 9, 9],
        ),
        (
            conv(4, 6, (3, 3), (1, 1), [2, 2, 2, 2], (2, 2), 1),
            [2, 4, 10, 10],
        ),
        (
            conv(6, 8, (5, 5), (1, 1), [2, 2, 2, 2], (1, 1), 2),
            [1, 6, 9, 9],
        ),
        // TensorFlow SAME with an even kernel: padding on one side only.
        (
            conv(3, 4, (2, 2), (1, 1), [0, 1, 0, 1], (1, 1), 1),
            [2, 3, 7, 6],
        ),
        (
            conv(3, 4, (4, 4), (1, 1), [1, 2, 2, 1], (1, 1), 1),
            [2, 3, 6, 7],
        ),
        // Maps of one cell and of four: many images per product.
        (
            conv(8, 16, (3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 2),
            [7, 8, 1, 1],
        ),
        (
            conv(8, 6, (1, 1), (1, 1), [0, 0, 0, 0], (1, 1), 1),
            [9, 8, 2, 2],
        ),
    ];
    for (i, (c, dims)) in cases.iter().enumerate() {
        let r = |shape: &[usize], seed: u64| -> Result<Tensor> {
            gradcheck::rand(shape, -1.0, 1.0, seed).to_dtype(candle_core::DType::F32)
        };
        let x = candle_core::Var::from_tensor(&r(dims, i as u64)?)?;
        let wdims = [
            c.out_channels,
            c.in_channels / c.groups,
            c.kernel.0,
            c.kernel.1,
        ];
        let w = candle_core::Var::from_tensor(&r(&wdims, 50 + i as u64)?)?;
        let b = candle_core::Var::from_tensor(&r(&[c.out_channels], 90 + i as u64)?)?;
        let mut outs = Vec::new();
        for f in [conv2d_cpu, conv2d_generic] {
            let y = f(&x, &w, Some(&b), c)?;
            let dy = r(y.dims(), 7)?;
            let grads = y.mul(&dy)?.sum_all()?.backward()?;
            let get = |v: &candle_core::Var| grads.get(v).cloned().expect("gradient");
            outs.push([y, get(&x), get(&w), get(&b)]);
        }
        for (what, (ours, candle)) in ["y", "dx", "dw", "db"]
            .iter()
            .zip(outs[0].iter().zip(&outs[1]))
        {
            let err = max_rel(ours, candle);
            assert!(err < 1e-4, "case {i} {what}: relative error {err}");
        }
    }
    Ok(())
}

#[test]
fn gradients_with_stride_padding_dilation_groups() {
    let cases = [
        // candle's own padding (the fast path): remainders 0/0 and 1/1,
        // groups, dilation.
        (
            conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
            [1, 2, 5, 5],
        ),
        (
            conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
            [1, 2, 6, 6],
        ),
        (
            conv(4, 4, (3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 2),
            [1, 4, 4, 5],
        ),
        (
            conv(2, 2, (3, 3), (1, 1), [2, 2, 2, 2], (2, 2), 1),
            [1, 2, 5, 6],
        ),
        // Odd width with stride 2: candle alone gets the backward shape wrong here.
        (
            conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
            [1, 2, 5, 6],
        ),
        (
            conv(2, 4, (3, 3), (2, 2), [0, 1, 0, 1], (1, 1), 2),
            [2, 2, 6, 5],
        ),
        (
            conv(4, 2, (2, 2), (1, 1), [1, 0, 0, 1], (2, 2), 2),
            [1, 4, 5, 5],
        ),
        (
            conv(2, 2, (3, 2), (2, 1), [1, 1, 0, 0], (1, 2), 1),
            [1, 2, 6, 5],
        ),
        (
            conv(3, 3, (1, 1), (1, 1), [0, 0, 0, 0], (1, 1), 3),
            [2, 3, 2, 2],
        ),
    ];
    for (i, (c, shape)) in cases.iter().enumerate() {
        let x = gradcheck::rand(shape, -1.0, 1.0, i as u64);
        let w = gradcheck::rand(
            &[
                c.out_channels,
                c.in_channels / c.groups,
                c.kernel.0,
                c.kernel.1,
            ],
            -1.0,
            1.0,
            10 + i as u64,
        );
        let b = gradcheck::rand(&[c.out_channels], -1.0, 1.0, 20 + i as u64);
        for f in [conv2d_cpu, conv2d_generic] {
            gradcheck::check(
                |a| f(&a[0], &a[1], Some(&a[2]), c),
                &[x.clone(), w.clone(), b.clone()],
                1e-6,
            );
        }
    }
}
