//! What a run becomes elsewhere: an engine epoch in the ledger's form
//! ([`epoch_record`]), and a ledger run in the report engine's form
//! ([`to_report`]).

use acbench_engine::detection::DetectionMetrics;
use acbench_engine::train::EpochMetrics;
use acbench_ledger::{ActParam, EpochRecord, RunStatus, StoredRun};

/// The ledger's form of an epoch.
pub fn epoch_record(m: &EpochMetrics) -> EpochRecord {
    let act_params = m
        .act_values
        .iter()
        .flat_map(|slot| {
            slot.params.iter().map(move |(param, values)| ActParam {
                slot: slot.path.clone(),
                activation: slot.activation.clone(),
                param: param.clone(),
                values: values.iter().map(|&v| f64::from(v)).collect(),
            })
        })
        .collect();
    EpochRecord {
        epoch: m.epoch,
        lr: m.lr,
        train_loss: m.train_loss,
        train_acc: m.train_acc,
        test_loss: m.test_loss,
        test_acc: m.test_acc,
        wall_s: m.wall_s,
        act_params,
        weight_increments: m.weight_increments.clone(),
        step_losses: m.step_losses.clone(),
        detection: m
            .detection
            .as_ref()
            .map(detection_record)
            .unwrap_or_default(),
        pr_curve: m
            .detection
            .as_ref()
            .map(|d| d.pr_curve.clone())
            .unwrap_or_default(),
    }
}

/// A detector's scores as the ledger's named metrics: `coco.KEY` for
/// COCO's twelve numbers, `voc07.map` and `voc12.map`, then
/// `voc07.class.NAME` and `voc12.class.NAME` per class, and `detections`.
fn detection_record(d: &DetectionMetrics) -> Vec<(String, f64)> {
    let coco = d.coco.iter().map(|(k, v)| (format!("coco.{k}"), *v));
    let maps = [
        ("voc07.map".to_owned(), d.voc07_map),
        ("voc12.map".to_owned(), d.voc12_map),
    ];
    let classes = |rule: &'static str, aps: &[(String, f64)]| {
        aps.iter()
            .map(move |(c, v)| (format!("{rule}.class.{c}"), *v))
            .collect::<Vec<_>>()
    };
    coco.chain(maps)
        .chain(classes("voc07", &d.voc07))
        .chain(classes("voc12", &d.voc12))
        .chain([("detections".to_owned(), d.detections as f64)])
        .collect()
}

/// A ledger run in the form the report engine reads.
pub fn to_report(run: &StoredRun) -> acbench_reports::RunResult {
    use acbench_reports::result::{EpochPoint, LayerIncrements, RunStatus as R, SlotParams};
    let status = match run.status {
        RunStatus::Finished => R::Finished,
        RunStatus::Diverged { .. } => R::Diverged,
        RunStatus::Failed { .. } | RunStatus::Running | RunStatus::Interrupted => R::Failed,
    };
    let formulas = run.manifest.get("formulas").and_then(|f| f.as_object());
    let mut final_act_params: Vec<SlotParams> = Vec::new();
    if let Some(last) = run.epochs.last() {
        for p in &last.act_params {
            match final_act_params.last_mut() {
                Some(s) if s.path == p.slot => s.params.push((p.param.clone(), p.values.clone())),
                _ => final_act_params.push(SlotParams {
                    path: p.slot.clone(),
                    activation: p.activation.clone(),
                    formula: formulas
                        .and_then(|f| f.get(&p.activation))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    params: vec![(p.param.clone(), p.values.clone())],
                }),
            }
        }
    }
    let mut weight_increments: Vec<LayerIncrements> = Vec::new();
    for e in &run.epochs {
        for (layer, norm) in &e.weight_increments {
            match weight_increments.iter_mut().find(|l| &l.layer == layer) {
                Some(l) => l.per_epoch.push(*norm),
                None => weight_increments.push(LayerIncrements {
                    layer: layer.clone(),
                    per_epoch: vec![*norm],
                }),
            }
        }
    }
    acbench_reports::RunResult {
        model: run.labels.model.clone(),
        activation: run.labels.activation.clone(),
        optimizer: run.labels.optimizer.clone(),
        dataset: run.labels.dataset.clone(),
        seed: run.labels.seed,
        status,
        epochs: run
            .epochs
            .iter()
            .map(|e| EpochPoint {
                epoch: e.epoch,
                train_loss: e.train_loss,
                test_loss: e.test_loss,
                test_acc: e.test_acc,
                wall_s: e.wall_s,
            })
            .collect(),
        final_act_params,
        weight_increments,
        step_losses: run
            .epochs
            .iter()
            .flat_map(|e| e.step_losses.iter().copied())
            .collect(),
        detector: run
            .spec
            .pointer("/model/detector/name")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        detection: run
            .epochs
            .last()
            .map(|e| e.detection.clone())
            .unwrap_or_default(),
        pr_curve: run
            .epochs
            .last()
            .map(|e| e.pr_curve.clone())
            .unwrap_or_default(),
    }
}
