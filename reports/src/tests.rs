use super::*;

#[test]
fn render_report_writes_exports_and_plots() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut runs = [
        fixtures::run("convnet", "relu", 0, RunStatus::Finished, 0.88),
        fixtures::run("convnet", "arelu", 0, RunStatus::Finished, 0.9),
    ];
    for r in &mut runs {
        r.dataset = "fashion-mnist".into();
    }
    let spec = ReportSpec {
        paper_table: Some("table1".into()),
        ..ReportSpec::default()
    };
    let out = match render_report(&runs, &spec, Some(dir.path())) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert!(out.text.contains("Settings differ"), "{}", out.text);
    let names: Vec<String> = out
        .files
        .iter()
        .filter_map(|p| p.strip_prefix(dir.path()).ok()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "report.txt",
            "report.md",
            "report.csv",
            "report.json",
            "report.tex",
            "plots/loss-convnet.svg",
            "plots/convergence-area.svg",
            "plots/shapes-convnet-arelu.svg",
            "plots/increments-convnet-relu.svg",
            "plots/increments-convnet-arelu.svg",
        ]
    );
}

#[test]
fn table5_layout_pairs_within_each_model() {
    let mut runs = Vec::new();
    for (opt, relu, arelu) in [("sgd", 0.80, 0.85), ("adam", 0.86, 0.84)] {
        for (act, acc) in [("relu", relu), ("arelu", arelu)] {
            let mut r = fixtures::run("googlenet", act, 0, RunStatus::Finished, acc);
            r.optimizer = opt.into();
            runs.push(r);
        }
    }
    let spec = ReportSpec {
        paper_table: Some("table5".into()),
        ..ReportSpec::default()
    };
    let report = match build_report(&runs, &spec) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(report.sections.len(), 1);
    let s = &report.sections[0];
    assert_eq!(s.grid.layout, Layout::ModelActivationsByOptimizer);
    assert_eq!(s.grid.rows, ["googlenet/relu", "googlenet/arelu"]);
    assert_eq!(s.grid.columns, ["sgd", "adam"]);
    let cmp = s
        .comparison
        .as_ref()
        .map(|c| (c.judges_values(), c.claims[0].summary.clone()));
    // Paper: AReLU beats ReLU on GoogLeNet with sgd, adagrad, adadelta,
    // adam (4/5); ours with sgd only.
    assert_eq!(
        cmp,
        Some((
            true,
            "googlenet: AReLU beats ReLU with every optimizer: paper no (4/5), ours no (1/2): agree"
                .to_owned()
        ))
    );
}

#[test]
fn unknown_paper_table_is_an_error() {
    let spec = ReportSpec {
        paper_table: Some("table8".into()),
        ..ReportSpec::default()
    };
    assert!(matches!(
        build_report(&[], &spec),
        Err(ReportError::UnknownPaperTable { .. })
    ));
}
