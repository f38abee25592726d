use super::*;
use crate::activation::{ActBindings, Registry};
use crate::checkpoint::Loaded;
use acbench_data::Split;
use acbench_dsl::ir::{Conv2d, Network, Node, Op, Padding, Pool2d, PoolKind, Shape, Span};
use rand::{Rng, SeedableRng};

const SIDE: usize = 8;

fn node(path: &str, input: Shape, output: Shape, op: Op) -> Node {
    let span = Span { start: 0, end: 0 };
    Node {
        path: path.into(),
        span,
        input,
        output,
        op,
    }
}

/// conv 3x3 (4 channels) -> bn -> act -> maxpool 2 -> flatten -> dropout
/// -> linear(2), on 1x8x8 inputs: every random stream is used, and there
/// are running statistics.
fn tiny_net() -> Network {
    let input = Shape::Image {
        c: 1,
        h: SIDE,
        w: SIDE,
    };
    let fmap = Shape::Image {
        c: 4,
        h: SIDE,
        w: SIDE,
    };
    let pooled = Shape::Image {
        c: 4,
        h: SIDE / 2,
        w: SIDE / 2,
    };
    let flat = Shape::Flat(4 * SIDE * SIDE / 4);
    let conv = Op::Conv2d(Conv2d {
        in_channels: 1,
        out_channels: 4,
        kernel: (3, 3),
        stride: (1, 1),
        padding: Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1,
        },
        dilation: (1, 1),
        groups: 1,
        bias: true,
    });
    let pool = Op::Pool(Pool2d {
        kind: PoolKind::Max,
        kernel: (2, 2),
        stride: (2, 2),
        padding: Padding::default(),
        count_include_pad: false,
    });
    Network {
        name: "tiny".into(),
        args: Vec::new(),
        input,
        output: Shape::Flat(2),
        body: vec![
            node("conv0", input, fmap, conv),
            node(
                "bn0",
                fmap,
                fmap,
                Op::BatchNorm {
                    channels: 4,
                    eps: 1e-3,
                    momentum: 0.9,
                },
            ),
            node("act0", fmap, fmap, Op::Act { slot: None }),
            node("pool0", fmap, pooled, pool),
            node("flatten0", pooled, flat, Op::Flatten),
            node("dropout0", flat, flat, Op::Dropout { rate: 0.25 }),
            node(
                "linear0",
                flat,
                Shape::Flat(2),
                Op::Linear {
                    in_features: flat.numel(),
                    out_features: 2,
                    bias: true,
                },
            ),
        ],
    }
}

fn model(seed: u64) -> Model {
    let registry = Registry::builtin().expect("registry");
    Model::build(
        &tiny_net(),
        &registry,
        &ActBindings::uniform("arelu"),
        &Device::Cpu,
        Seed(seed),
    )
    .expect("model")
}

/// Class 0 has a bright left half, class 1 a bright right half, both
/// under noise: learnable, but not in one step.
fn split(n: usize, rng: &mut impl Rng) -> Split {
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        for _row in 0..SIDE {
            for col in 0..SIDE {
                let bright = (col < SIDE / 2) == (label == 0);
                let base: u8 = if bright { 150 } else { 60 };
                images.push(base.saturating_add(rng.random_range(0..80)));
            }
        }
        labels.push(label);
    }
    Split { images, labels }
}

fn dataset(n_train: usize, n_test: usize) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    Dataset {
        name: "halves".into(),
        classes: 2,
        shape: (1, SIDE, SIDE),
        class_names: vec!["left".into(), "right".into()],
        train: split(n_train, &mut rng),
        test: split(n_test, &mut rng),
    }
}

fn config(epochs: usize, lr: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 10,
        eval_batch_size: 4,
        optimizer: OptimizerConfig::Sgd,
        schedule: Schedule::Constant { lr },
        weight_decay: 0.0,
        seed: Seed(seed),
        normalization: InputNorm::PerImage,
        augment: Augment {
            crop_padding: 1,
            hflip: false,
        },
        loss_every: None,
    }
}

#[derive(Default)]
struct Recorder {
    starts: Vec<(usize, usize, usize)>,
    batches: Vec<(usize, usize, usize)>,
    ends: usize,
}

impl Observer for Recorder {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, _lr: f64) {
        self.starts.push((epoch, epochs, batches));
    }
    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        assert!(loss.is_finite());
        self.batches.push((epoch, batch, batches));
    }
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {
        self.ends += 1;
    }
}

#[test]
fn loss_goes_down_and_observer_sees_every_batch() {
    let data = dataset(64, 21);
    let mut rec = Recorder::default();
    let out = train(
        &mut model(1),
        &data,
        &config(6, 0.05, 1),
        &Device::Cpu,
        &mut rec,
    )
    .expect("train");
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.epochs.len(), 6);
    let (first, last) = (&out.epochs[0], &out.epochs[5]);
    assert!(
        last.train_loss < 0.7 * first.train_loss,
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(last.test_acc >= 0.9, "test accuracy {}", last.test_acc);
    assert!(last.images_per_s > 0.0 && last.wall_s > 0.0);
    // 64 examples in batches of 10: six full batches and a kept partial one.
    assert_eq!(rec.starts[0], (0, 6, 7));
    assert_eq!(rec.batches.len(), 6 * 7);
    assert_eq!(rec.batches[6], (0, 6, 7));
    assert_eq!(rec.ends, 6);
    assert_eq!(out.act_values, last.act_values);
    assert_eq!(out.act_values[0].activation, "arelu");
}

#[test]
fn the_loss_curve_per_step_has_a_point_every_window_and_at_each_epochs_end() {
    let data = dataset(64, 21);
    let mut cfg = config(2, 0.05, 1);
    cfg.loss_every = Some(3);
    let out = train(
        &mut model(1),
        &data,
        &cfg,
        &Device::Cpu,
        &mut Recorder::default(),
    )
    .expect("train");
    // Seven batches an epoch: windows of 3, 3 and the last 1.
    for (e, m) in out.epochs.iter().enumerate() {
        let steps: Vec<usize> = m.step_losses.iter().map(|p| p.0).collect();
        assert_eq!(steps, [e * 7 + 3, e * 7 + 6, e * 7 + 7]);
        let [a, b, c] = [0, 1, 2].map(|i| m.step_losses[i].1);
        let mean = (3.0 * a + 3.0 * b + c) / 7.0;
        assert!(
            (mean - m.train_loss).abs() < 1e-12,
            "{mean} vs {}",
            m.train_loss
        );
    }
    // Left unset: about `STEP_POINTS` points over the run, at least one a step.
    assert_eq!(config(2, 0.05, 1).loss_window(7), 1);
    let long = config(100, 0.05, 1);
    assert_eq!(long.loss_window(1000), 334);
}

fn losses(out: &TrainOutcome) -> Vec<(u64, u64)> {
    out.epochs
        .iter()
        .map(|m| (m.train_loss.to_bits(), m.test_loss.to_bits()))
        .collect()
}

#[test]
fn same_seed_is_bit_identical_and_another_seed_differs() {
    let data = dataset(40, 9);
    let run = |model_seed, train_seed| {
        train(
            &mut model(model_seed),
            &data,
            &config(2, 0.05, train_seed),
            &Device::Cpu,
            &mut NoObserver,
        )
        .expect("train")
    };
    let (a, b) = (run(3, 3), run(3, 3));
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.act_values, b.act_values);
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(x.act_values, y.act_values);
    }
    // Same initial weights, different shuffling/dropout/augmentation.
    let c = run(3, 4);
    assert_ne!(losses(&a), losses(&c));
    assert_ne!(a.act_values, c.act_values);
    // Different initial weights too.
    assert_ne!(losses(&a), losses(&run(4, 4)));
}

#[test]
fn huge_learning_rate_diverges_without_error() {
    let data = dataset(64, 5);
    let out = train(
        &mut model(2),
        &data,
        &config(5, 1e12, 2),
        &Device::Cpu,
        &mut NoObserver,
    )
    .expect("a divergence is an outcome, not an error");
    let RunStatus::Diverged { epoch, .. } = out.status else {
        panic!("expected divergence, got {:?}", out.status);
    };
    assert_eq!(out.epochs.len(), epoch);
    assert!(epoch < 5);
}

#[test]
fn evaluation_covers_the_whole_test_split() {
    // 23 test examples in eval batches of 4: five full and one of 3.
    let data = dataset(20, 23);
    let mut cfg = config(1, 0.05, 5);
    let small = train(&mut model(5), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
    cfg.eval_batch_size = 1000;
    let whole = train(&mut model(5), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
    let (s, w) = (&small.epochs[0], &whole.epochs[0]);
    assert_eq!(s.train_loss.to_bits(), w.train_loss.to_bits());
    assert_eq!(s.test_acc, w.test_acc);
    assert!((s.test_acc * 23.0 - (s.test_acc * 23.0).round()).abs() < 1e-9);
    assert!(
        (s.test_loss - w.test_loss).abs() < 1e-5 * w.test_loss.abs().max(1.0),
        "{} vs {}",
        s.test_loss,
        w.test_loss
    );
}

#[test]
fn each_epoch_runs_at_its_scheduled_rate() {
    let data = dataset(10, 3);
    let mut cfg = config(3, 0.05, 6);
    cfg.schedule = Schedule::Step {
        lr: 0.05,
        milestones: vec![1, 2],
        factor: 10.0,
    };
    let out = train(&mut model(6), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
    let lrs: Vec<f64> = out.epochs.iter().map(|m| m.lr).collect();
    assert_eq!(lrs, [0.05, 0.005, 0.0005]);
}

#[test]
fn rejects_data_that_does_not_fit_and_bad_config() {
    let mut data = dataset(8, 3);
    data.classes = 3;
    let err = train(
        &mut model(0),
        &data,
        &config(1, 0.1, 0),
        &Device::Cpu,
        &mut NoObserver,
    );
    assert!(matches!(err, Err(Error::DataMismatch(_))), "{err:?}");
    let data = dataset(8, 3);
    let mut cfg = config(1, 0.1, 0);
    cfg.batch_size = 0;
    let err = train(&mut model(0), &data, &cfg, &Device::Cpu, &mut NoObserver);
    assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
}

#[test]
fn config_deserialises_with_defaults() {
    let cfg: TrainConfig =
        serde_json::from_str(r#"{"epochs": 150, "batch_size": 64, "seed": 7}"#).expect("config");
    assert_eq!(cfg.seed, Seed(7));
    assert_eq!(cfg.optimizer, OptimizerConfig::Sgd);
    assert_eq!(cfg.schedule, Schedule::paper());
    assert_eq!(cfg.normalization, InputNorm::PerImage);
    assert_eq!(cfg.augment, Augment::default());
    assert_eq!(cfg.weight_decay, 0.0);
    let json = serde_json::to_string(&config(2, 0.1, 3)).expect("serialise");
    let back: TrainConfig = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, config(2, 0.1, 3));
    assert!(
        serde_json::from_str::<TrainConfig>(
            r#"{"epochs": 1, "batch_size": 1, "seed": 0, "lr": 1}"#
        )
        .is_err()
    );
}

fn params_bits(model: &Model) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = model
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .chain(
            model
                .buffers()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().clone())),
        )
        .map(|(n, t)| {
            let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
            (n, v.into_iter().map(f32::to_bits).collect())
        })
        .collect();
    out.sort();
    out
}

/// Copies the run's checkpoint folder when epoch `at` ends: what a kill
/// during epoch `at` would leave on disk.
struct CopyAt {
    at: usize,
    from: std::path::PathBuf,
    to: std::path::PathBuf,
}

impl Observer for CopyAt {
    fn epoch_end(&mut self, m: &EpochMetrics) {
        if m.epoch == self.at {
            std::fs::create_dir_all(&self.to).expect("dir");
            for e in std::fs::read_dir(&self.from).expect("checkpoint dir") {
                let e = e.expect("entry");
                std::fs::copy(e.path(), self.to.join(e.file_name())).expect("copy");
            }
        }
    }
}

fn adam_config() -> TrainConfig {
    let mut cfg = config(4, 0.01, 8);
    cfg.optimizer = serde_json::from_str(r#"{"name": "adam"}"#).expect("adam");
    cfg
}

#[test]
fn a_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let data = dataset(40, 9);
    let cfg = adam_config();
    let mut whole_model = model(8);
    let whole = train(&mut whole_model, &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");

    let root = tempfile::tempdir().expect("tmp");
    let store = CheckpointStore::new(&root.path().join("a"), "run", false);
    let killed = root.path().join("b").join("run");
    let mut copy = CopyAt {
        at: 2,
        from: store.dir().to_owned(),
        to: killed.clone(),
    };
    train_with_checkpoints(
        &mut model(8),
        &data,
        &cfg,
        &Device::Cpu,
        &mut copy,
        &store,
        None,
    )
    .expect("train");
    // Only the last checkpoint is kept: one tensor file.
    let tensor_files = std::fs::read_dir(&killed)
        .expect("copy")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
        })
        .count();
    assert_eq!(tensor_files, 1);

    // A fresh process: the model is built from the seed again, then the
    // checkpoint written after epoch 1 is loaded into it.
    let mut resumed_model = model(8);
    let store = CheckpointStore::new(&root.path().join("b"), "run", false);
    let Loaded::Resume(resume) = store.load(&mut resumed_model) else {
        panic!("the checkpoint should load");
    };
    assert_eq!(resume.next_epoch, 2);
    let mut rec = Recorder::default();
    let resumed = train_with_checkpoints(
        &mut resumed_model,
        &data,
        &cfg,
        &Device::Cpu,
        &mut rec,
        &store,
        Some(resume),
    )
    .expect("resume");
    assert_eq!(
        rec.starts.first().map(|s| s.0),
        Some(2),
        "epochs 0-1 were not redone"
    );
    assert_eq!(losses(&whole), losses(&resumed));
    assert_eq!(whole.act_values, resumed.act_values);
    assert_eq!(params_bits(&whole_model), params_bits(&resumed_model));
    for (a, b) in whole.epochs.iter().zip(&resumed.epochs) {
        assert_eq!(a.test_acc.to_bits(), b.test_acc.to_bits());
        assert_eq!(a.weight_increments, b.weight_increments);
    }
    // Finished: the run's checkpoint is gone unless kept.
    store.finish().expect("finish");
    assert!(!store.dir().exists());
}

/// Asks to stop after batch `batch` of epoch `epoch`, as a signal would.
struct StopAt {
    epoch: usize,
    batch: usize,
    now: bool,
}

impl Observer for StopAt {
    fn batch_end(&mut self, epoch: usize, batch: usize, _: usize, _: f32) {
        self.now |= (epoch, batch) == (self.epoch, self.batch);
    }

    fn stop_requested(&mut self) -> bool {
        self.now
    }
}

#[test]
fn a_run_stopped_mid_epoch_resumes_from_its_checkpoint_bit_identically() {
    let data = dataset(40, 9);
    let cfg = adam_config();
    let mut whole_model = model(8);
    let whole = train(&mut whole_model, &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");

    let root = tempfile::tempdir().expect("tmp");
    let store = CheckpointStore::new(root.path(), "run", false);
    let mut stop = StopAt {
        epoch: 2,
        batch: 1,
        now: false,
    };
    let stopped = train_with_checkpoints(
        &mut model(8),
        &data,
        &cfg,
        &Device::Cpu,
        &mut stop,
        &store,
        None,
    )
    .expect("train");
    assert_eq!(stopped.status, RunStatus::Interrupted { epoch: 2 });
    assert_eq!(
        stopped.epochs.len(),
        2,
        "the abandoned epoch is not reported"
    );

    let mut resumed_model = model(8);
    let Loaded::Resume(resume) = store.load(&mut resumed_model) else {
        panic!("the checkpoint of epoch 2 is kept");
    };
    assert_eq!(resume.next_epoch, 2);
    let resumed = train_with_checkpoints(
        &mut resumed_model,
        &data,
        &cfg,
        &Device::Cpu,
        &mut NoObserver,
        &store,
        Some(resume),
    )
    .expect("resume");
    assert_eq!(resumed.status, RunStatus::Completed);
    assert_eq!(losses(&whole), losses(&resumed));
    assert_eq!(params_bits(&whole_model), params_bits(&resumed_model));
}

#[test]
fn foreign_or_damaged_checkpoints_are_refused_and_leave_the_model_alone() {
    let data = dataset(20, 5);
    let mut cfg = adam_config();
    cfg.epochs = 1;
    let root = tempfile::tempdir().expect("tmp");
    let store = CheckpointStore::new(root.path(), "run", true);
    assert!(matches!(store.load(&mut model(3)), Loaded::None));
    train_with_checkpoints(
        &mut model(3),
        &data,
        &cfg,
        &Device::Cpu,
        &mut NoObserver,
        &store,
        None,
    )
    .expect("train");
    let json_path = store.dir().join("checkpoint.json");
    let json = std::fs::read_to_string(&json_path).expect("kept checkpoint");

    let refused = |store: &CheckpointStore, want: &str| {
        let mut fresh = model(3);
        let before = params_bits(&fresh);
        match store.load(&mut fresh) {
            Loaded::Refused(why) => assert!(why.contains(want), "{why}"),
            other => panic!("expected a refusal naming `{want}`, got {other:?}"),
        }
        assert_eq!(before, params_bits(&fresh));
    };
    // Another run's key (another spec hash).
    std::fs::create_dir_all(root.path().join("other")).expect("dir");
    for e in std::fs::read_dir(store.dir()).expect("dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), root.path().join("other").join(e.file_name())).expect("copy");
    }
    refused(
        &CheckpointStore::new(root.path(), "other", false),
        "another spec hash",
    );
    // Another format, another acbench version.
    std::fs::write(&json_path, json.replace("\"format\": 1", "\"format\": 99")).expect("w");
    refused(&store, "format 99");
    std::fs::write(
        &json_path,
        json.replace(env!("CARGO_PKG_VERSION"), "0.0.0-old"),
    )
    .expect("w");
    refused(&store, "acbench 0.0.0-old");
    // A damaged tensor file.
    std::fs::write(&json_path, &json).expect("w");
    let tensors = std::fs::read_dir(store.dir())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .expect("tensor file");
    let mut bytes = std::fs::read(&tensors).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tensors, bytes).expect("w");
    refused(&store, "SHA-256");
    // A model of another shape never gets half-loaded.
    std::fs::write(&json_path, "{not json").expect("w");
    refused(&store, "not a checkpoint");
}
