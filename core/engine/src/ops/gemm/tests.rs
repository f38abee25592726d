use super::*;

fn naive(a: &[f64], am: Mat, b: &[f64], bm: Mat) -> Vec<f64> {
    let mut out = vec![0.0; am.rows * bm.cols];
    for i in 0..am.rows {
        for j in 0..bm.cols {
            for k in 0..am.cols {
                out[i * bm.cols + j] += a[i * am.rs + k * am.cs] * b[k * bm.rs + j * bm.cs];
            }
        }
    }
    out
}

#[test]
fn nt_kernel_matches_the_naive_product() {
    for (m, n, l) in [(4, 4, 16), (5, 7, 37), (16, 9, 784), (3, 2, 5), (8, 12, 1)] {
        let a: Vec<f32> = (0..m * l)
            .map(|v| ((v * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..n * l)
            .map(|v| ((v * 5 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let mut c = vec![1f32; m * n];
        if !matmul_nt_f32(&mut c, &a, &b, m, n, l) {
            // No AVX-512 here: the caller falls back to gemm, and the
            // kernel must have left `c` alone.
            assert!(c.iter().all(|&v| v == 1.0));
            continue;
        }
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0
                    + (0..l)
                        .map(|t| f64::from(a[i * l + t]) * f64::from(b[j * l + t]))
                        .sum::<f64>();
                let got = f64::from(c[i * n + j]);
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{m}x{n}x{l} [{i},{j}]: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn nt_products_match_the_naive_product_both_ways() {
    // The second shape takes the transposing way, the others the
    // dot-product kernel (where the CPU has AVX-512).
    for (m, n, l) in [(5, 7, 37), (128, 600, 440), (2, 3, 1)] {
        assert_eq!(transpose_pays(m, n, l), m == 128);
        let a: Vec<f32> = (0..m * l)
            .map(|v| ((v * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..n * l)
            .map(|v| ((v * 5 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let want = naive(
            &a.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            Mat::rm(m, l),
            &b.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            Mat::rm(n, l).t(),
        );
        for threads in [1, 2] {
            let mut c = vec![1f32; m * n];
            matmul_nt(&mut c, &a, &b, (m, n, l), threads);
            for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                let w = w + 1.0;
                assert!(
                    (f64::from(got) - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "{m}x{n}x{l} [{i}]: {got} vs {w}"
                );
            }
        }
    }
}

#[test]
fn products_with_transposed_operands_and_accumulation() {
    let a: Vec<f64> = (0..12).map(|v| v as f64 * 0.5 - 2.0).collect();
    let b: Vec<f64> = (0..20).map(|v| (v as f64).sin()).collect();
    // a as 3x4, b as 4x5; then a^T (4x3 view of a 3x4) times a 3x5 view of b.
    for (am, bm) in [
        (Mat::rm(3, 4), Mat::rm(4, 5)),
        (Mat::rm(3, 4).t(), Mat::rm(3, 5)),
        (Mat::rm(4, 3), Mat::rm(5, 3).t()),
    ] {
        let want = naive(&a, am, &b, bm);
        for threads in [1, 2] {
            let mut got = vec![1.0; am.rows * bm.cols];
            matmul(
                &mut got,
                Mat::rm(am.rows, bm.cols),
                &a,
                am,
                &b,
                bm,
                false,
                threads,
            );
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{g} vs {w}");
            }
            matmul(
                &mut got,
                Mat::rm(am.rows, bm.cols),
                &a,
                am,
                &b,
                bm,
                true,
                threads,
            );
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() < 1e-12);
            }
        }
    }
}
