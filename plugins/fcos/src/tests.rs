use acbench_plugin_api::detector::abi::{FLAG_CROWD, Grid};
use acbench_plugin_api::detector::testing::{Harness, TruthBox};
use acbench_plugin_api::testing::TestRng;

use super::*;

const CLASSES: usize = 3;

/// A 96x96 input seen as a 12x12 grid (stride 8), as fcos-tiny.
fn grid(batch: usize) -> Grid {
    Grid {
        batch,
        height: 12,
        width: 12,
        image_height: 96,
        image_width: 96,
    }
}

fn harness() -> Harness<Fcos> {
    Harness::new(CLASSES)
}

fn target(t: &[f32], c: usize, i: usize, j: usize) -> f32 {
    t[(c * 12 + i) * 12 + j]
}

#[test]
fn layout_and_initial_bias() {
    let h = harness();
    let layout = h.layout().expect("layout");
    assert_eq!((layout.channels, layout.target_channels), (CLASSES + 5, 6));
    let bias = h.init_bias().expect("bias");
    for b in &bias[..CLASSES] {
        assert!((f64::from(*b) + 99f64.ln()).abs() < 1e-6, "{b}");
    }
    assert!(bias[CLASSES..].iter().all(|b| b.is_nan()), "others kept");
    let bad = Harness::<Fcos>::new(CLASSES).with("radius", 0.0);
    assert!(bad.layout().expect_err("refused").contains("radius"));
}

#[test]
fn centre_sampling_picks_the_smallest_box_and_ignores_crowds() {
    // Box A: 32x32 at (8, 8), centre (24, 24); box B: 16x16 at (16, 16),
    // centre (24, 24) too; a crowd box at the bottom right.
    let images = vec![vec![
        TruthBox::new([8.0, 8.0, 32.0, 32.0], 0),
        TruthBox::new([16.0, 16.0, 16.0, 16.0], 2),
        TruthBox {
            bbox: [64.0, 64.0, 24.0, 24.0],
            class: 1,
            flags: FLAG_CROWD,
        },
    ]];
    let t = harness().assign(grid(1), &images).expect("assign");
    // Location (2, 2) is (20, 20): inside both, within 1.5 strides (12 px)
    // of both centres: the smaller box B wins.
    assert_eq!(target(&t, 0, 2, 2), 2.0);
    assert_eq!(
        [1, 2, 3, 4].map(|c| target(&t, c, 2, 2)),
        [4.0, 4.0, 12.0, 12.0]
    );
    let ctr = target(&t, 5, 2, 2);
    assert!((f64::from(ctr) - 1.0 / 3.0).abs() < 1e-6, "{ctr}");
    // Location (1, 1) = (12, 12) is only inside A, and |12 - 24| = 12 is
    // not within the radius: background.
    assert_eq!(target(&t, 0, 1, 1), BACKGROUND);
    // Far away: background with zero targets.
    assert_eq!(target(&t, 0, 0, 11), BACKGROUND);
    assert_eq!(target(&t, 3, 0, 11), 0.0);
    // The crowd box's centre region and all of its inside are ignored.
    assert_eq!(target(&t, 0, 9, 9), IGNORED);
    assert_eq!(target(&t, 0, 10, 10), IGNORED);
    assert!(t.iter().all(|v| v.is_finite()), "every value written");
}

/// A batch with a few boxes and a random head.
fn batch(seed: u64) -> (Vec<Vec<TruthBox>>, Vec<f32>) {
    let images = vec![
        vec![
            TruthBox::new([10.0, 12.0, 30.0, 26.0], 1),
            TruthBox::new([50.0, 40.0, 20.0, 40.0], 0),
        ],
        vec![TruthBox::new([30.0, 30.0, 40.0, 40.0], 2)],
    ];
    let n = 2 * (CLASSES + 5) * 144;
    (images, TestRng::new(seed).fill(n, -2.0, 2.0))
}

#[test]
fn the_gradient_matches_finite_differences() {
    let h = harness();
    let (images, head) = batch(7);
    let targets = h.assign(grid(2), &images).expect("assign");
    let (terms, _) = h.loss(grid(2), &head, &targets, false).expect("loss");
    assert!(terms.iter().all(|t| t.is_finite() && *t > 0.0), "{terms:?}");
    // Every channel of every foreground location, and a sample of others.
    let plane = 144;
    let mut indices = Vec::new();
    for n in 0..2 {
        for cell in 0..plane {
            let fg = targets[n * 6 * plane + cell] >= 0.0;
            if fg || cell % 17 == 0 {
                for c in 0..CLASSES + 5 {
                    indices.push((n * (CLASSES + 5) + c) * plane + cell);
                }
            }
        }
    }
    let check = h
        .gradient_check(grid(2), &head, &targets, 1e-2, 1e-2, indices)
        .expect("check");
    assert!(check.max_rel < 2e-2, "{check:?}");
}

/// The raw value whose distance is `d` pixels at stride 8.
fn raw(d: f64) -> f32 {
    ((d / 8.0).exp_m1()).ln() as f32
}

#[test]
fn decoding_recovers_a_box_and_ranks_by_score() {
    let h = harness();
    let plane = 144;
    let mut head = vec![-20.0f32; (CLASSES + 5) * plane];
    // At cell (3, 4), location (36, 28): a class-1 box [20, 16, 30, 24].
    let cell = 3 * 12 + 4;
    head[plane + cell] = 3.0;
    for (k, d) in [16.0, 12.0, 14.0, 12.0].into_iter().enumerate() {
        head[(CLASSES + k) * plane + cell] = raw(d);
    }
    head[(CLASSES + 4) * plane + cell] = 2.0;
    // A weaker class-0 box elsewhere.
    let other = 8 * 12 + 8;
    head[other] = 0.5;
    head[(CLASSES + 4) * plane + other] = 0.0;
    let found = h.decode(grid(1), &head, 0.05, 10).expect("decode");
    assert_eq!(found[0].len(), 2, "{found:?}");
    let best = found[0][0];
    assert_eq!(best.class, 1);
    for (got, want) in best.bbox.iter().zip([20.0, 16.0, 30.0, 24.0]) {
        assert!((got - want).abs() < 1e-3, "{:?}", best.bbox);
    }
    let expected = (sigmoid(3.0) * sigmoid(2.0)).sqrt() as f32;
    assert!((best.score - expected).abs() < 1e-6);
    assert!(found[0][1].score < best.score);
    let capped = h.decode(grid(1), &head, 0.05, 1).expect("decode");
    assert_eq!(capped[0], vec![best], "capacity keeps the best");
    let none = h.decode(grid(1), &head, 0.99, 10).expect("decode");
    assert!(none[0].is_empty());
}

#[test]
fn nan_in_the_head_is_never_decoded() {
    let h = harness();
    let head = vec![f32::NAN; (CLASSES + 5) * 144];
    let found = h.decode(grid(1), &head, 0.0, 10).expect("decode");
    assert!(found[0].is_empty());
}

/// Values computed by `torchvision.ops` on fixed inputs
/// (`scripts/detector-goldens.py`).
#[test]
fn the_loss_equals_torchvisions() {
    let text = include_str!("../tests/torchvision-goldens.txt");
    let cases = parse_goldens(text);
    assert!(cases.len() >= 5, "goldens present");
    for (k, case) in cases.iter().enumerate() {
        let classes = case.classes;
        let n = case.labels.len();
        let g = Grid {
            batch: 1,
            height: 1,
            width: n,
            image_height: 8,
            image_width: 8 * n,
        };
        let mut head = vec![0.0f32; (classes + 5) * n];
        let mut targets = vec![0.0f32; 6 * n];
        for j in 0..n {
            for c in 0..classes {
                head[c * n + j] = case.logits[j * classes + c];
            }
            for q in 0..4 {
                head[(classes + q) * n + j] = case.box_raw[j * 4 + q];
                targets[(1 + q) * n + j] = case.box_target[j * 4 + q];
            }
            head[(classes + 4) * n + j] = case.ctr_logit[j];
            targets[j] = case.labels[j];
            targets[5 * n + j] = case.ctr_target[j];
        }
        let h = Harness::<Fcos>::new(classes)
            .with("alpha", case.alpha)
            .with("gamma", case.gamma);
        let (terms, _) = h.loss(g, &head, &targets, false).expect("loss");
        for (t, (got, want)) in terms.iter().zip(case.expected).enumerate() {
            let err = (f64::from(*got) - want).abs() / (1.0 + want.abs());
            assert!(err < 1e-5, "case {k} term {t}: {got} vs torchvision {want}");
        }
    }
}

struct Golden {
    classes: usize,
    alpha: f64,
    gamma: f64,
    labels: Vec<f32>,
    logits: Vec<f32>,
    box_raw: Vec<f32>,
    box_target: Vec<f32>,
    ctr_logit: Vec<f32>,
    ctr_target: Vec<f32>,
    expected: [f64; 3],
}

/// Reads the goldens: one case per line, `key=v,v,...` fields separated by
/// `;` (a flat format, so this crate needs no JSON parser).
fn parse_goldens(text: &str) -> Vec<Golden> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let field = |name: &str| -> Vec<f64> {
                let part = line
                    .split(';')
                    .find_map(|p| p.strip_prefix(&format!("{name}=")))
                    .unwrap_or_else(|| panic!("field {name} in {line}"));
                if part.is_empty() {
                    return Vec::new();
                }
                part.split(',')
                    .map(|v| v.parse().expect("number"))
                    .collect()
            };
            let f32s = |name: &str| field(name).into_iter().map(|v| v as f32).collect();
            let e = field("expected");
            Golden {
                classes: field("classes")[0] as usize,
                alpha: field("alpha")[0],
                gamma: field("gamma")[0],
                labels: f32s("labels"),
                logits: f32s("logits"),
                box_raw: f32s("box_raw"),
                box_target: f32s("box_target"),
                ctr_logit: f32s("ctr_logit"),
                ctr_target: f32s("ctr_target"),
                expected: [e[0], e[1], e[2]],
            }
        })
        .collect()
}
