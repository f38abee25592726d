use super::*;
use crate::fixtures::run;
use crate::paper::PaperTables;
use crate::result::{RunResult, RunStatus};

fn table(id: &str) -> PaperTable {
    match PaperTables::load().and_then(|t| t.get(id).cloned()) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn pairs_are_derived_from_the_rows() {
    let names = |id: &str| -> Vec<String> {
        claim_pairs(&table(id))
            .into_iter()
            .map(|(a, b)| format!("{a}>{b}"))
            .collect()
    };
    assert_eq!(
        names("table1"),
        [
            "asigmoid>sigmoid",
            "atanh>tanh",
            "arelu>relu",
            "arelu>lrelu"
        ]
    );
    assert_eq!(
        names("table2"),
        ["arelu>prelu", "arelu>swish", "arelu>pelu", "arelu>frelu"]
    );
    let t5 = names("table5");
    assert_eq!(t5.len(), 8);
    assert_eq!(t5[0], "googlenet/arelu>googlenet/relu");
    assert_eq!(t5[7], "resnet/arelu>resnet/swish");
}

fn seeds(model: &str, act: &str, accs: &[f64]) -> Vec<RunResult> {
    accs.iter()
        .enumerate()
        .map(|(s, &a)| run(model, act, s as u64, RunStatus::Finished, a))
        .collect()
}

#[test]
fn pairs_carry_a_paired_difference_and_a_verdict_per_column() {
    let mut runs = [
        seeds("alexnet", "sigmoid", &[0.80, 0.81, 0.80]),
        seeds("alexnet", "asigmoid", &[0.85, 0.86, 0.86]),
        seeds("vgg", "sigmoid", &[0.90, 0.85]),
        seeds("vgg", "asigmoid", &[0.88, 0.87]),
        seeds("densenet", "asigmoid", &[0.70]),
    ]
    .concat();
    runs.push(run("resnet", "sigmoid", 0, RunStatus::Diverged, f64::NAN));
    runs.push(run("resnet", "asigmoid", 0, RunStatus::Diverged, f64::NAN));
    runs.push(run("densenet", "sigmoid", 0, RunStatus::Diverged, f64::NAN));
    let t = table("table1");
    let grid = &Grid::build(&runs, crate::Layout::ActivationsByModel, &[], &t.columns)[0];
    let cmp = compare(grid, &t, &[]);
    assert!(cmp.judges_values());
    let c = &cmp.cells[0];
    assert_eq!((c.row.as_str(), c.column.as_str()), ("sigmoid", "alexnet"));
    let pair = &cmp.pairs[0];
    assert_eq!(
        (pair.first.as_str(), pair.second.as_str()),
        ("asigmoid", "sigmoid")
    );
    let col = |name: &str| {
        pair.columns
            .iter()
            .find(|c| c.column == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    // Paper, Table 1: ASigmoid ahead on all five models.
    assert!(pair.columns.iter().all(|c| c.paper == Order::First));
    let alexnet = col("alexnet");
    assert_eq!(alexnet.verdict, Some(Verdict::Supports));
    let d = alexnet.ours.expect("difference");
    assert_eq!((d.pairing, d.n), (Pairing::Paired, 3));
    assert!((d.mean - 0.0533333).abs() < 1e-6, "{}", d.mean);
    assert!(
        alexnet
            .summary
            .starts_with("ASigmoid vs Sigmoid, alexnet: +0.0533 ["),
        "{}",
        alexnet.summary
    );
    assert!(
        alexnet
            .summary
            .ends_with("(paired, n=3), P(ASigmoid > Sigmoid) = 1.00: supports"),
        "{}",
        alexnet.summary
    );
    // Two seeds that disagree: nothing is established.
    assert!(matches!(
        col("vgg").verdict,
        Some(Verdict::Inconclusive { .. })
    ));
    assert_eq!(
        col("resnet").note.as_deref(),
        Some("both diverged in every run")
    );
    // Only ASigmoid converged on densenet: it wins there, as the paper counts.
    assert_eq!(col("densenet").verdict, Some(Verdict::Supports));
    assert_eq!(
        col("densenet").note.as_deref(),
        Some("Sigmoid diverged in every run")
    );
    // Columns we did not run are not in our grid, so not compared.
    assert_eq!(pair.columns.len(), 4);
}

#[test]
fn settings_differ_mode_compares_our_pairs_without_the_papers_values() {
    let mut runs = [
        seeds("convnet", "relu", &[0.88, 0.87, 0.89]),
        seeds("convnet", "arelu", &[0.90, 0.895, 0.905]),
    ]
    .concat();
    for r in &mut runs {
        r.dataset = "fashion-mnist".into();
    }
    let t = table("table1");
    let grid = &Grid::build(&runs, crate::Layout::ActivationsByModel, &[], &[])[0];
    let cmp = compare(grid, &t, &["5 epochs instead of the paper's 80".to_owned()]);
    assert!(!cmp.judges_values());
    assert_eq!(
        cmp.differences,
        [
            "dataset fashion-mnist instead of the paper's cifar10",
            "5 epochs instead of the paper's 80"
        ]
    );
    assert!(cmp.cells.is_empty());
    // Only the pairs of which we ran a row: AReLU against ReLU, and
    // against LReLU (not run, said so).
    assert_eq!(cmp.pairs.len(), 2);
    assert_eq!(
        cmp.pairs[1].columns[0].note.as_deref(),
        Some("not run: LReLU")
    );
    let arelu_relu = &cmp.pairs[0];
    assert_eq!(arelu_relu.columns.len(), 1);
    let convnet = &arelu_relu.columns[0];
    // The paper has no convnet column: no ordering of its own to set beside.
    assert_eq!(convnet.paper, Order::Unknown);
    assert_eq!(convnet.verdict, Some(Verdict::Supports));
}

#[test]
fn paper_nulls_count_as_not_converged() {
    // Table 2: PELU is "—" on alexnet, so AReLU wins there in the paper.
    let t = table("table2");
    assert_eq!(paper_order(&t, "arelu", "pelu", "alexnet"), Order::First);
    assert_eq!(paper_order(&t, "arelu", "pelu", "lenet"), Order::Unknown);
}
