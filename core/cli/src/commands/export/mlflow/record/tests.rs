use std::collections::BTreeSet;

use acbench_ledger::{ActParam, EpochRecord, RunLabels};
use serde_json::json;

use super::*;

fn value_of<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

#[test]
fn the_spec_flattens_to_dotted_keys() {
    let spec = json!({
        "suite": "paper",
        "train": {"lr": 0.001, "epochs": 3, "schedule": {"milestones": [70, 100]}, "nesterov": false},
        "model": {"label": "convnet", "network": null, "args": {}},
        "activation": {"bindings": ["arelu", "fc=relu"]},
        "plugins": [{"name": "baselines", "sha256": "ab"}, {"name": "adaptive", "sha256": "cd"}],
    });
    let p = spec_params(&spec);
    assert!(p.truncated.is_empty(), "{:?}", p.truncated);
    assert_eq!(value_of(&p, "suite"), Some("paper"));
    assert_eq!(value_of(&p, "train.lr"), Some("0.001"));
    assert_eq!(value_of(&p, "train.epochs"), Some("3"));
    assert_eq!(value_of(&p, "train.nesterov"), Some("false"));
    assert_eq!(value_of(&p, "train.schedule.milestones"), Some("[70,100]"));
    assert_eq!(value_of(&p, "model.network"), Some("null"));
    assert_eq!(value_of(&p, "model.args"), Some("{}"));
    assert_eq!(
        value_of(&p, "activation.bindings"),
        Some(r#"["arelu","fc=relu"]"#)
    );
    assert_eq!(value_of(&p, "plugins.1.sha256"), Some("cd"));
    assert_eq!(p.params.len(), 13);
    assert_eq!(p.truncated_tag(), None);
}

#[test]
fn keys_are_made_valid_and_stay_unique() {
    assert_eq!(mlflow_key("act@fc/x:y"), "act_fc_x_y");
    assert_eq!(mlflow_key(""), "_");
    assert_eq!(mlflow_key("."), "_.");
    assert_eq!(mlflow_key("..x"), "_..x");
    assert_eq!(mlflow_key("naïve"), "na_ve");
    // Two spec paths that read the same once made valid keep two keys.
    let p = spec_params(&json!({"a/b": 1, "a_b": 2}));
    let keys: BTreeSet<_> = p.params.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains("a_b"));
}

#[test]
fn long_keys_and_values_are_cut_and_said_so() {
    let long_key = "k".repeat(400);
    let other_long_key = format!("{}x", "k".repeat(399));
    let long_value = "é".repeat(MAX_PARAM_VALUE + 10);
    let spec = json!({ &long_key: 1, &other_long_key: 2, "big": long_value });
    let p = spec_params(&spec);
    for kv in &p.params {
        assert!(kv.key.len() <= MAX_KEY, "{}", kv.key.len());
        assert!(kv.value.chars().count() <= MAX_PARAM_VALUE);
    }
    let keys: BTreeSet<_> = p.params.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "long keys stay distinct");
    assert_eq!(mlflow_key(&long_key), mlflow_key(&long_key), "stable");
    let big = value_of(&p, "big").expect("big");
    assert_eq!(big.chars().count(), MAX_PARAM_VALUE);
    assert!(big.chars().all(|c| c == 'é'), "cut on a character boundary");
    assert_eq!(p.truncated.len(), 3, "{:?}", p.truncated);
    let tag = p.truncated_tag().expect("tag");
    assert_eq!(tag.key, TAG_TRUNCATED);
    assert!(
        tag.value
            .contains("big: value of 6010 characters cut to 6000")
    );
}

#[test]
fn tag_values_are_cut() {
    let t = KeyValue::tag("acbench.error", &"x".repeat(MAX_TAG_VALUE * 2));
    assert_eq!(t.value.len(), MAX_TAG_VALUE);
}

fn epoch(i: usize) -> EpochRecord {
    EpochRecord {
        epoch: i,
        lr: 0.1,
        train_loss: 1.0 / (i + 1) as f64,
        train_acc: 0.5,
        test_loss: 0.9,
        test_acc: 0.6,
        wall_s: 2.0,
        act_params: vec![
            ActParam {
                slot: "fc".into(),
                activation: "arelu".into(),
                param: "a".into(),
                values: vec![1.5],
            },
            ActParam {
                slot: "conv1".into(),
                activation: "prelu_channel".into(),
                param: "a".into(),
                values: vec![0.1, 0.2, 0.3],
            },
        ],
        weight_increments: vec![("conv1".into(), 0.25)],
        step_losses: vec![(i * 3 + 3, 0.7 - i as f64 / 10.0)],
        detection: Vec::new(),
        pr_curve: Vec::new(),
    }
}

#[test]
fn metrics_per_epoch_with_activation_parameters_and_increments() {
    let m = epoch_metrics(&[epoch(0), epoch(1)], 42);
    assert_eq!(m.len(), 2 * (6 + 1 + 3 + 1 + 1));
    let keys: Vec<_> = m
        .iter()
        .filter(|m| m.step == 1)
        .map(|m| m.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "lr",
            "wall_s",
            "act.fc.a",
            "act.conv1.a.0",
            "act.conv1.a.1",
            "act.conv1.a.2",
            "dw.conv1"
        ]
    );
    assert!(m.iter().all(|m| m.timestamp == 42));
    let loss1 = m.iter().find(|m| m.step == 1 && m.key == "train_loss");
    assert_eq!(loss1.map(|m| m.value), Some(0.5));
    // The loss curve per step, at the run's step count.
    let curve: Vec<(i64, f64)> = m
        .iter()
        .filter(|m| m.key == "train_loss_step")
        .map(|m| (m.step, m.value))
        .collect();
    assert_eq!(curve, [(3, 0.7), (6, 0.6)]);
}

#[test]
fn non_finite_metrics_are_sent_as_protobuf_json_strings() {
    let metric = |value| Metric {
        key: "train_loss".into(),
        value,
        timestamp: 1,
        step: 0,
    };
    let text = |value| serde_json::to_string(&metric(value)).expect("json");
    assert!(text(f64::NAN).contains(r#""value":"NaN""#));
    assert!(text(f64::INFINITY).contains(r#""value":"Infinity""#));
    assert!(text(f64::NEG_INFINITY).contains(r#""value":"-Infinity""#));
    assert!(text(0.5).contains(r#""value":0.5"#));
}

fn kv(prefix: &str, n: usize, len: usize) -> Vec<KeyValue> {
    (0..n)
        .map(|i| KeyValue {
            key: format!("{prefix}{i}"),
            value: "v".repeat(len),
        })
        .collect()
}

fn metrics(n: usize) -> Vec<Metric> {
    (0..n)
        .map(|i| Metric {
            key: format!("m{}", i % 7),
            value: i as f64,
            timestamp: 1,
            step: (i / 7) as i64,
        })
        .collect()
}

/// Every batch within every limit, and every entry in exactly one batch,
/// in order.
fn check(batches: &[Batch], params: &[KeyValue], tags: &[KeyValue], metrics: &[Metric]) {
    for b in batches {
        assert!(b.len() > 0);
        assert!(b.params.len() <= MAX_BATCH_PARAMS);
        assert!(b.tags.len() <= MAX_BATCH_TAGS);
        assert!(b.metrics.len() <= MAX_BATCH_METRICS);
        assert!(b.len() <= MAX_BATCH_ENTRIES);
        let bytes = serde_json::to_string(b).expect("json").len();
        assert!(bytes < 1_000_000, "{bytes} bytes");
    }
    let all_params: Vec<_> = batches.iter().flat_map(|b| b.params.clone()).collect();
    let all_tags: Vec<_> = batches.iter().flat_map(|b| b.tags.clone()).collect();
    let all_metrics: Vec<_> = batches.iter().flat_map(|b| b.metrics.clone()).collect();
    assert_eq!(all_params, params);
    assert_eq!(all_tags, tags);
    assert_eq!(all_metrics, metrics);
}

#[test]
fn batches_respect_every_limit() {
    // Counts: 250 params, 120 tags, 2500 metrics.
    let (p, t, m) = (kv("p", 250, 10), kv("t", 120, 10), metrics(2500));
    let b = batches(p.clone(), t.clone(), m.clone());
    check(&b, &p, &t, &m);
    // 100 p | 100 p | 50 p + 100 t | 20 t + 980 m | 1000 m | 520 m
    assert_eq!(b.len(), 6);
    assert_eq!(b[2].tags.len(), 100);
    assert_eq!(b[3].metrics.len(), 980);
    // Bytes: 100 parameters of 6000 quotes are 1.2 MB of JSON.
    let p = kv("q", 300, 0)
        .into_iter()
        .map(|kv| KeyValue {
            value: "\"".repeat(MAX_PARAM_VALUE),
            ..kv
        })
        .collect::<Vec<_>>();
    let b = batches(p.clone(), Vec::new(), Vec::new());
    check(&b, &p, &[], &[]);
    assert!(b.len() >= 4);
    // Nothing at all: no request.
    assert!(batches(Vec::new(), Vec::new(), Vec::new()).is_empty());
    // A small run: one request.
    let (p, t, m) = (kv("p", 30, 10), kv("t", 12, 10), metrics(77));
    let b = batches(p.clone(), t.clone(), m.clone());
    assert_eq!(b.len(), 1);
    check(&b, &p, &t, &m);
}

#[test]
fn statuses_tags_and_names() {
    let run = StoredRun {
        key: "k1".into(),
        labels: RunLabels {
            suite: "s".into(),
            model: "convnet".into(),
            activation: "arelu fc=relu".into(),
            optimizer: "sgd".into(),
            dataset: "fashion-mnist".into(),
            seed: 3,
        },
        spec: json!({}),
        manifest: json!({}),
        status: RunStatus::Diverged {
            epoch: 2,
            cause: None,
        },
        started_at: 1.0,
        finished_at: Some(2.0),
        attempts: 1,
        epochs: vec![epoch(0)],
    };
    assert_eq!(run_name(&run), "convnet/arelu fc=relu/sgd/fashion-mnist/3");
    assert_eq!(mlflow_status(&run.status), "FAILED");
    assert_eq!(mlflow_status(&RunStatus::Finished), "FINISHED");
    assert_eq!(mlflow_status(&RunStatus::Running), "RUNNING");
    assert_eq!(mlflow_status(&RunStatus::Interrupted), "KILLED");
    let tags = run_tags(&run);
    let tag = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.as_str());
    assert_eq!(tag(TAG_SPEC_HASH), Some("k1"));
    assert_eq!(tag(TAG_STATUS), Some("diverged"));
    assert_eq!(tag(TAG_EPOCHS), Some("1"));
    assert_eq!(tag("acbench.diverged_epoch"), Some("2"));
    assert_eq!(tag("seed"), Some("3"));
    assert_eq!(
        tag("mlflow.runName"),
        Some("convnet/arelu fc=relu/sgd/fashion-mnist/3")
    );
    assert_eq!(tag(TAG_EXPORT), None, "set last, by the exporter");
}
