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
            "report.html",
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
    let Some(cmp) = s.comparison.as_ref() else {
        panic!("a comparison with table5");
    };
    assert!(cmp.judges_values());
    // AReLU against ReLU within GoogLeNet's rows, per optimizer: one run
    // each gives a difference but no interval.
    let pair = &cmp.pairs[0];
    assert_eq!(
        (pair.first.as_str(), pair.second.as_str()),
        ("googlenet/arelu", "googlenet/relu")
    );
    let lines: Vec<&str> = pair.columns.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        lines,
        [
            "AReLU vs ReLU, sgd: +0.0500 (one run each, n=1), P(AReLU > ReLU) = 1.00: inconclusive",
            "AReLU vs ReLU, adam: -0.0200 (one run each, n=1), P(AReLU > ReLU) = 0.00: inconclusive",
        ]
    );
    // The claims about Table 5 are judged on the same runs (GoogLeNet on
    // CIFAR10): one unit each run, the rest not run.
    let (shown, _) = report.claims_in_view();
    let googlenet = shown
        .iter()
        .find(|j| j.claim.id == "arelu-best-optimizers-googlenet")
        .expect("shown");
    assert_eq!(googlenet.outcome, Outcome::Inconclusive);
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
