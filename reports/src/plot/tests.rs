use super::*;
use crate::fixtures::run;

fn doc(svg: &str) -> roxmltree::Document<'_> {
    match roxmltree::Document::parse(svg) {
        Ok(d) => d,
        Err(e) => panic!("not well-formed SVG: {e}\n{svg}"),
    }
}

fn count(d: &roxmltree::Document<'_>, tag: &str) -> usize {
    d.descendants().filter(|n| n.has_tag_name(tag)).count()
}

/// Data curves and their legend marks are drawn 2 px wide, axes and
/// mesh lines 1 px.
fn curves(d: &roxmltree::Document<'_>) -> usize {
    d.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .count()
}

fn texts(d: &roxmltree::Document<'_>) -> Vec<String> {
    d.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect()
}

fn fixture() -> Vec<RunResult> {
    vec![
        run("alexnet", "relu", 0, RunStatus::Finished, 0.8),
        run("alexnet", "relu", 1, RunStatus::Finished, 0.81),
        run("alexnet", "arelu", 0, RunStatus::Finished, 0.85),
        run("alexnet", "arelu", 1, RunStatus::Finished, 0.86),
        run("vgg", "relu", 0, RunStatus::Diverged, f64::NAN),
        run("vgg", "arelu", 0, RunStatus::Finished, 0.9),
    ]
}

fn get<'a>(plots: &'a [Plot], name: &str) -> &'a Plot {
    match plots.iter().find(|p| p.file_name == name) {
        Some(p) => p,
        None => panic!(
            "no {name} among {:?}",
            plots.iter().map(|p| &p.file_name).collect::<Vec<_>>()
        ),
    }
}

#[test]
fn predictable_file_names() {
    let plots = match plots(&fixture()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&str> = plots.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss-alexnet.svg",
            "loss-vgg.svg",
            "convergence-area.svg",
            "shapes-alexnet-arelu.svg",
            "shapes-vgg-arelu.svg",
            "increments-alexnet-relu.svg",
            "increments-alexnet-arelu.svg",
            "increments-vgg-relu.svg",
            "increments-vgg-arelu.svg",
        ]
    );
    let mut adam = run("alexnet", "relu", 0, RunStatus::Finished, 0.8);
    adam.optimizer = "adam".into();
    let two = [run("alexnet", "relu", 0, RunStatus::Finished, 0.8), adam];
    let names: Vec<String> = match super::plots(&two) {
        Ok(p) => p.into_iter().map(|p| p.file_name).collect(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        names[..2],
        ["loss-alexnet-sgd.svg", "loss-alexnet-adam.svg"]
    );
}

#[test]
fn loss_plot_has_a_curve_and_band_per_activation() {
    let plots = match plots(&fixture()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let d = doc(&get(&plots, "loss-alexnet.svg").svg);
    // Two curves plus two legend marks; two seeds each, so two bands.
    assert_eq!(curves(&d), 4);
    assert_eq!(count(&d, "polygon"), 2);
    let t = texts(&d);
    for label in ["relu", "arelu", "epoch", "training loss"] {
        assert!(t.iter().any(|x| x == label), "{label} not in {t:?}");
    }
    assert!(
        t.iter()
            .any(|x| x.starts_with("Training loss per epoch, alexnet")),
        "{t:?}"
    );
    // One seed (vgg/arelu) gives no band.
    let d = doc(&get(&plots, "loss-vgg.svg").svg);
    assert_eq!(count(&d, "polygon"), 0);
}

#[test]
fn loss_curves_per_step_where_every_run_recorded_them() {
    let mut runs = fixture();
    for r in &mut runs {
        let s = r.seed as f64 * 0.01;
        r.step_losses = (1..=6).map(|k| (k * 50, 1.0 / k as f64 + s)).collect();
    }
    let plots = plots(&runs).expect("plots");
    let d = doc(&get(&plots, "loss-alexnet.svg").svg);
    assert_eq!(curves(&d), 4);
    assert_eq!(count(&d, "polygon"), 2);
    let t = texts(&d);
    assert!(t.iter().any(|x| x == "iteration"), "{t:?}");
    assert!(
        t.iter().any(|x| x == "300"),
        "the last step on the axis: {t:?}"
    );
    assert!(
        t.iter()
            .any(|x| x.starts_with("Training loss per iteration, alexnet")),
        "{t:?}"
    );
    // The convergence area comes from the same curve, in loss × epochs.
    let r = &runs[0];
    let epochs = r.epochs.len() as f64;
    let points: Vec<(f64, f64)> = r
        .step_losses
        .iter()
        .map(|&(k, l)| (k as f64 * epochs / 300.0, l))
        .collect();
    let want = crate::stats::area_under(&points);
    assert!((r.convergence_area().expect("finished") - want).abs() < 1e-12);
}

#[test]
fn convergence_area_bars_and_labels() {
    use crate::stats::convergence_area;
    assert!((convergence_area(&[1.0, 0.5, 0.25]) - 1.125).abs() < 1e-12);
    assert_eq!(convergence_area(&[1.0]), 0.0);
    let plots = match plots(&fixture()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let d = doc(&get(&plots, "convergence-area.svg").svg);
    let t = texts(&d);
    for label in ["alexnet", "vgg", "relu", "arelu"] {
        assert!(t.iter().any(|x| x == label), "{label} not in {t:?}");
    }
    // Bars: alexnet relu, alexnet arelu, vgg arelu (vgg relu diverged),
    // plus two legend marks, the background and the plotting area.
    let filled_bars = d
        .descendants()
        .filter(|n| {
            n.has_tag_name("rect")
                && n.attribute("fill")
                    .is_some_and(|f| f != "#FFFFFF" && f != "none")
        })
        .count();
    assert_eq!(filled_bars, 5);
}

#[test]
fn shapes_evaluate_the_formula_per_slot() {
    let plots = match plots(&fixture()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let d = doc(&get(&plots, "shapes-alexnet-arelu.svg").svg);
    assert_eq!(curves(&d), 4);
    let t = texts(&d);
    assert!(t.iter().any(|x| x == "features.act0"), "{t:?}");
    assert!(t.iter().any(|x| x == "classifier.act1"), "{t:?}");
    assert!(
        t.iter().any(|x| x.starts_with("Learned AReLU per layer")),
        "{t:?}"
    );
    let polyline = d
        .descendants()
        .find(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .and_then(|n| n.attribute("points"))
        .map(|p| p.split_whitespace().count());
    assert_eq!(polyline, Some(SHAPE_SAMPLES));
}

#[test]
fn bad_formula_is_an_error() {
    let mut r = run("alexnet", "arelu", 0, RunStatus::Finished, 0.8);
    r.final_act_params[0].formula = Some("max(a * x + q, x)".into());
    match plots(&[r]) {
        Err(ReportError::Formula { activation, .. }) => assert_eq!(activation, "arelu"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn increments_one_curve_per_layer() {
    let plots = match plots(&fixture()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let d = doc(&get(&plots, "increments-alexnet-relu.svg").svg);
    assert_eq!(curves(&d), 4);
    let t = texts(&d);
    assert!(
        t.iter().any(|x| x == "conv0") && t.iter().any(|x| x == "fc1"),
        "{t:?}"
    );
}

#[test]
fn detection_runs_get_a_precision_recall_plot_per_model() {
    let mut runs = fixture();
    for (k, r) in runs.iter_mut().enumerate() {
        if r.model == "alexnet" {
            r.detector = Some("fcos".into());
            // A falling curve, a little different per seed.
            r.pr_curve = (0..101)
                .map(|i| (1.0 - i as f64 / 100.0) * (0.9 + 0.01 * k as f64))
                .collect();
        }
    }
    let plots = match plots(&runs) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&str> = plots.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(
        names[..3],
        ["loss-alexnet.svg", "pr-alexnet.svg", "loss-vgg.svg"]
    );
    let pr = get(&plots, "pr-alexnet.svg");
    assert_eq!(pr.kind, PlotKind::PrCurve);
    assert!(pr.covers(&runs[0]) && !pr.covers(&runs[5]));
    let d = doc(&pr.svg);
    // A curve per activation and its legend mark, a band each (two seeds).
    assert_eq!(curves(&d), 4);
    assert_eq!(count(&d, "polygon"), 2);
    let t = texts(&d);
    for label in ["recall", "precision", "relu", "arelu"] {
        assert!(t.iter().any(|x| x == label), "{label} not in {t:?}");
    }
}
