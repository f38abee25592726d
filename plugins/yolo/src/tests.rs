use acbench_plugin_api::detector::abi::{FLAG_DIFFICULT, Grid};
use acbench_plugin_api::detector::testing::{Harness, TruthBox};
use acbench_plugin_api::testing::TestRng;

use super::*;

const CLASSES: usize = 3;
const A: usize = 5;

fn grid(batch: usize) -> Grid {
    Grid {
        batch,
        height: 12,
        width: 12,
        image_height: 96,
        image_width: 96,
    }
}

fn harness() -> Harness<Yolo> {
    Harness::new(CLASSES)
}

/// Target `k` of anchor `a` at cell `(i, j)` of a one-image batch.
fn target(t: &[f32], a: usize, k: usize, i: usize, j: usize) -> f32 {
    t[((a * PER_ANCHOR + k) * 12 + i) * 12 + j]
}

#[test]
fn layout_anchors_and_bias() {
    let h = harness();
    let layout = h.layout().expect("layout");
    assert_eq!(layout.channels, A * (5 + CLASSES));
    assert_eq!(layout.target_channels, A * PER_ANCHOR);
    let values = [5.0, 1.5, 6.0, 1.0, 1.0, 0.01];
    let sides = anchor_sides(Settings::new(CLASSES, &values));
    assert_eq!(sides.len(), 5);
    assert!((sides[0] - 1.5).abs() < 1e-12 && (sides[4] - 6.0).abs() < 1e-12);
    assert!((sides[2] - 3.0).abs() < 1e-12, "geometric: {sides:?}");
    let bias = h.init_bias().expect("bias");
    for a in 0..A {
        let obj = bias[a * (5 + CLASSES) + 4];
        assert!((f64::from(obj) + 99f64.ln()).abs() < 1e-6);
        assert!(bias[a * (5 + CLASSES)].is_nan());
    }
    let bad = Harness::<Yolo>::new(CLASSES).with("anchors", 2.5);
    assert!(bad.layout().expect_err("refused").contains("whole number"));
}

#[test]
fn each_box_has_one_responsible_anchor() {
    // A 24x24 box centred at (44, 28): cell (3, 5), offsets (0.5, 0.5); its
    // side is 3 strides, the third anchor's.
    let images = vec![vec![
        TruthBox::new([32.0, 16.0, 24.0, 24.0], 2),
        TruthBox {
            bbox: [70.0, 70.0, 16.0, 16.0],
            class: 0,
            flags: FLAG_DIFFICULT,
        },
    ]];
    let t = harness().assign(grid(1), &images).expect("assign");
    assert_eq!(target(&t, 2, 0, 3, 5), 1.0);
    assert_eq!(target(&t, 2, 1, 3, 5), 0.5);
    assert_eq!(target(&t, 2, 2, 3, 5), 0.5);
    assert!(target(&t, 2, 3, 3, 5).abs() < 1e-6, "ln(3 / 3)");
    assert_eq!(target(&t, 2, 5, 3, 5), 2.0);
    let weight = 2.0 - 24.0 * 24.0 / (96.0 * 96.0);
    assert!((f64::from(target(&t, 2, 6, 3, 5)) - weight).abs() < 1e-6);
    let positives = (0..A)
        .flat_map(|a| (0..144).map(move |c| (a, c)))
        .filter(|&(a, c)| t[(a * PER_ANCHOR) * 144 + c] == 1.0)
        .count();
    assert_eq!(positives, 1);
    // The difficult box's cells are ignored for every anchor.
    for a in 0..A {
        assert_eq!(target(&t, a, 0, 9, 9), IGNORED);
    }
    assert_eq!(target(&t, 0, 0, 0, 0), 0.0);
}

#[test]
fn the_gradient_matches_finite_differences() {
    let h = harness();
    let images = vec![
        vec![
            TruthBox::new([10.0, 12.0, 30.0, 26.0], 1),
            TruthBox::new([50.0, 40.0, 20.0, 40.0], 0),
        ],
        vec![TruthBox::new([30.0, 30.0, 40.0, 40.0], 2)],
    ];
    let per = A * (5 + CLASSES) * 144;
    let head = TestRng::new(3).fill(2 * per, -2.0, 2.0);
    let targets = h.assign(grid(2), &images).expect("assign");
    let (terms, _) = h.loss(grid(2), &head, &targets, false).expect("loss");
    assert!(terms.iter().all(|t| t.is_finite() && *t > 0.0), "{terms:?}");
    // Every channel of the responsible anchors' cells, and a sample.
    let mut indices = Vec::new();
    for n in 0..2 {
        for a in 0..A {
            for cell in 0..144 {
                let o = targets[n * A * PER_ANCHOR * 144 + a * PER_ANCHOR * 144 + cell];
                if o == 1.0 || cell % 23 == 0 {
                    for k in 0..5 + CLASSES {
                        indices.push(n * per + (a * (5 + CLASSES) + k) * 144 + cell);
                    }
                }
            }
        }
    }
    let check = h
        .gradient_check(grid(2), &head, &targets, 1e-2, 1e-2, indices)
        .expect("check");
    assert!(check.max_rel < 2e-2, "{check:?}");
}

#[test]
fn decoding_recovers_the_assigned_box() {
    let h = harness();
    let per = 5 + CLASSES;
    let mut head = vec![-20.0f32; A * per * 144];
    let cell = 3 * 12 + 5;
    // Anchor 2 (side 3 strides) at cell (3, 5): centre offsets 0.5, scale 1.
    for (k, v) in [0.0, 0.0, 0.0, 0.0, 4.0].into_iter().enumerate() {
        head[(2 * per + k) * 144 + cell] = v;
    }
    for c in 0..CLASSES {
        head[(2 * per + 5 + c) * 144 + cell] = if c == 2 { 5.0 } else { 0.0 };
    }
    let found = h.decode(grid(1), &head, 0.5, 5).expect("decode");
    assert_eq!(found[0].len(), 1, "{found:?}");
    let d = found[0][0];
    assert_eq!(d.class, 2);
    for (got, want) in d.bbox.iter().zip([32.0, 16.0, 24.0, 24.0]) {
        assert!((got - want).abs() < 1e-4, "{:?}", d.bbox);
    }
    let nan = vec![f32::NAN; A * per * 144];
    assert!(h.decode(grid(1), &nan, 0.0, 5).expect("decode")[0].is_empty());
}
