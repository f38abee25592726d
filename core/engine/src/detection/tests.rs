//! The detection task on a tiny in-memory set with the shipped detectors:
//! training helps, the same seed gives the same numbers, networks that do
//! not end in the detector's head are refused, and detections are clipped
//! to the photo.

use std::collections::BTreeMap;

use acbench_data::detection::{DetSplit, DetectionSet, ImageInfo, Object};
use acbench_dsl::ir::{Network, Value};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::task::photo_extent;
use super::{DetectorRun, PostProcess, init_head, train_detector};
use crate::activation::{ActBindings, Registry};
use crate::error::Error;
use crate::model::Model;
use crate::rng::Seed;
use crate::train::{InputNorm, NoObserver, TrainConfig, TrainOutcome};

const SIDE: usize = 32;

/// Bright squares (class 0) and bright bars (class 1) of 6-12 pixels on a
/// dark, noisy 32x32 canvas, one or two per image, with exact boxes.
fn split(n: usize, rng: &mut ChaCha8Rng, first_id: i64) -> DetSplit {
    let mut s = DetSplit::default();
    for k in 0..n {
        let mut img: Vec<u8> = (0..SIDE * SIDE).map(|_| rng.random_range(0..40)).collect();
        let mut objects = Vec::new();
        for _ in 0..rng.random_range(1..=2usize) {
            let class = rng.random_range(0..2u32);
            let side = rng.random_range(6..=12usize);
            let (w, h) = if class == 0 { (side, side) } else { (side, 3) };
            let (x, y) = (
                rng.random_range(0..=SIDE - w),
                rng.random_range(0..=SIDE - h),
            );
            for r in y..y + h {
                for c in x..x + w {
                    img[r * SIDE + c] = 220;
                }
            }
            objects.push(Object {
                bbox: [x as f32, y as f32, w as f32, h as f32],
                class,
                crowd: false,
                difficult: false,
                area: (w * h) as f64,
            });
        }
        s.images.extend(img);
        s.objects.push(objects);
        s.info
            .push(ImageInfo::native(first_id + k as i64, SIDE, SIDE));
    }
    s
}

fn set() -> DetectionSet {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    DetectionSet {
        name: "squares-and-bars".into(),
        classes: 2,
        class_names: vec!["square".into(), "bar".into()],
        shape: (1, SIDE, SIDE),
        train: split(48, &mut rng, 1),
        test: split(16, &mut rng, 1),
    }
}

/// A stride-4 network (8x8 head) ending in `out` channels per cell.
fn network(out: &str) -> Network {
    let src = format!(
        "network det(classes=2) {{\n input 1x32x32\n conv(8, 3, stride=2, pad=same) bn act\n \
         conv(16, 3, stride=2, pad=same) bn act\n conv(16, 3, pad=same) bn act\n \
         conv({out}, 1)\n}}\n"
    );
    let args = vec![("classes".to_owned(), Value::Int(2))];
    acbench_dsl::parse(&src, "det.acnet")
        .and_then(|m| m.elaborate(None, &args))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 8,
        eval_batch_size: 16,
        optimizer: serde_json::from_str(r#"{"name": "adam"}"#).expect("adam"),
        schedule: crate::schedule::Schedule::Constant { lr: 0.01 },
        weight_decay: 0.0,
        seed: Seed(3),
        normalization: InputNorm::PerImage,
        augment: Default::default(),
        loss_every: None,
    }
}

fn run_of(registry: &Registry, name: &str) -> DetectorRun {
    let detector = registry.detector(name).expect("shipped").clone();
    let cfg = detector.config(2, &BTreeMap::new()).expect("config");
    DetectorRun::new(detector, cfg, &PostProcess::default()).expect("run")
}

fn train(name: &str, out: &str, epochs: usize) -> TrainOutcome {
    let registry = Registry::builtin().expect("registry");
    let run = run_of(&registry, name);
    let cfg = config(epochs);
    let mut model = Model::build(
        &network(out),
        &registry,
        &ActBindings::uniform("relu"),
        &Device::Cpu,
        cfg.seed,
    )
    .expect("model");
    init_head(&mut model, &run).expect("head");
    train_detector(
        &mut model,
        &set(),
        &run,
        &cfg,
        &Device::Cpu,
        &mut NoObserver,
        None,
    )
    .expect("train")
}

fn ap50(outcome: &TrainOutcome) -> Vec<f64> {
    outcome.epochs.iter().map(|e| e.test_acc).collect()
}

#[test]
fn training_each_shipped_detector_raises_ap50_and_repeats_exactly() {
    for (name, out) in [("fcos", "classes + 5"), ("yolo", "5 * (5 + classes)")] {
        let outcome = train(name, out, 12);
        let curve = ap50(&outcome);
        let first = curve[0];
        let best = curve.iter().copied().fold(0.0, f64::max);
        assert!(
            best > first + 0.2 && best > 0.3,
            "{name}: AP50 per epoch {curve:?}"
        );
        for e in &outcome.epochs {
            let m = e.detection.as_ref().expect("detection metrics");
            assert_eq!(m.coco.len(), 12);
            assert_eq!(m.pr_curve.len(), 101);
            assert_eq!(m.coco("ap50"), Some(e.test_acc));
        }
        let again = train(name, out, 2);
        let bits = |o: &TrainOutcome| -> Vec<[u64; 3]> {
            o.epochs
                .iter()
                .map(|e| {
                    [
                        e.train_loss.to_bits(),
                        e.test_loss.to_bits(),
                        e.test_acc.to_bits(),
                    ]
                })
                .collect()
        };
        assert_eq!(
            bits(&again),
            bits(&outcome)[..2],
            "{name}: same seed, same numbers"
        );
    }
}

#[test]
fn a_network_without_the_detectors_head_is_refused() {
    let registry = Registry::builtin().expect("registry");
    let run = run_of(&registry, "fcos");
    let mut model = Model::build(
        &network("classes + 4"),
        &registry,
        &ActBindings::uniform("relu"),
        &Device::Cpu,
        Seed(0),
    )
    .expect("model");
    match init_head(&mut model, &run) {
        Err(Error::DataMismatch(m)) => {
            assert!(m.contains("the detector needs a map of 7 channels"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn detections_are_clipped_to_the_photo_not_its_padding() {
    // A 200x100 photo letterboxed into 64x64: scale 0.32, 16 rows of
    // padding above and below.
    let info = ImageInfo {
        id: 1,
        file: None,
        width: 200,
        height: 100,
        scale: 0.32,
        pad_x: 0.0,
        pad_y: 16.0,
    };
    assert_eq!(photo_extent(&info, (3, 64, 64)), [0.0, 16.0, 64.0, 48.0]);
    let native = ImageInfo::native(1, 32, 32);
    assert_eq!(photo_extent(&native, (1, 32, 32)), [0.0, 0.0, 32.0, 32.0]);
}
