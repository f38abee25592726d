use super::*;
use crate::fixtures::run;
use crate::paper::PaperTables;
use crate::result::RunStatus;

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

#[test]
fn values_mode_agree_disagree_and_cant_tell() {
    // Paper, Table 1: asigmoid beats sigmoid on all five models.
    let runs = [
        run("alexnet", "sigmoid", 0, RunStatus::Finished, 0.80),
        run("alexnet", "asigmoid", 0, RunStatus::Finished, 0.85),
        run("vgg", "sigmoid", 0, RunStatus::Finished, 0.90),
        run("vgg", "asigmoid", 0, RunStatus::Finished, 0.88),
        run("resnet", "sigmoid", 0, RunStatus::Diverged, f64::NAN),
        run("resnet", "asigmoid", 0, RunStatus::Diverged, f64::NAN),
        run("densenet", "sigmoid", 0, RunStatus::Diverged, f64::NAN),
        run("densenet", "asigmoid", 0, RunStatus::Finished, 0.70),
    ];
    let t = table("table1");
    let grid = &Grid::build(&runs, Layout::ActivationsByModel, &[], &t.columns)[0];
    let cmp = compare(grid, &t, &[]);
    assert!(cmp.judges_values());
    let c = &cmp.cells[0];
    assert_eq!((c.row.as_str(), c.column.as_str()), ("sigmoid", "alexnet"));
    assert!((c.difference.unwrap_or(0.0) - (0.80 - 0.8141)).abs() < 1e-12);
    let claim = &cmp.claims[0];
    assert_eq!(
        (claim.first.as_str(), claim.second.as_str()),
        ("asigmoid", "sigmoid")
    );
    let by_col = |col: &str| {
        claim
            .columns
            .iter()
            .find(|j| j.column == col)
            .map(|j| (j.agreement, j.reason.clone()))
    };
    assert_eq!(by_col("alexnet"), Some((Agreement::Agree, None)));
    assert_eq!(by_col("vgg"), Some((Agreement::Disagree, None)));
    assert_eq!(
        by_col("resnet"),
        Some((Agreement::CantTell, Some("both diverged".into())))
    );
    // Only asigmoid converged on densenet: it wins there.
    assert_eq!(by_col("densenet"), Some((Agreement::Agree, None)));
    assert_eq!(
        by_col("googlenet"),
        Some((Agreement::CantTell, Some("not run".into())))
    );
    assert_eq!((claim.paper_wins, claim.paper_judged), (5, 5));
    assert_eq!(
        (claim.ours_wins, claim.ours_judged, claim.ours_unknown),
        (2, 3, 1)
    );
    assert_eq!(claim.verdict, Agreement::Disagree);
    assert_eq!(
        claim.summary,
        "ASigmoid beats Sigmoid on every model: paper yes (5/5), ours no (2/3), 1 can't tell: disagree"
    );
    // Pairs with no runs at all can't be told.
    assert_eq!(cmp.claims[1].verdict, Agreement::CantTell);
    assert_eq!(
        cmp.claims[1].summary,
        "ATanh beats Tanh on every model: paper no (3/5), ours can't tell (not run)"
    );
}

#[test]
fn settings_differ_mode_judges_orderings_only() {
    let mut runs = vec![
        run("convnet", "relu", 0, RunStatus::Finished, 0.88),
        run("convnet", "arelu", 0, RunStatus::Finished, 0.90),
    ];
    for r in &mut runs {
        r.dataset = "fashion-mnist".into();
    }
    let t = table("table1");
    let grid = &Grid::build(&runs, Layout::ActivationsByModel, &[], &[])[0];
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
    let arelu_relu = &cmp.claims[2];
    // Paper: AReLU beats ReLU on 3 of 5 models; ours on our only model.
    assert_eq!((arelu_relu.paper_wins, arelu_relu.paper_judged), (3, 5));
    assert_eq!((arelu_relu.ours_wins, arelu_relu.ours_judged), (1, 1));
    assert_eq!(
        arelu_relu.summary,
        "AReLU beats ReLU on every model: paper no (3/5), ours yes (1/1): disagree"
    );
    let convnet = arelu_relu.columns.iter().find(|j| j.column == "convnet");
    assert_eq!(
        convnet.map(|j| (j.ours, j.agreement)),
        Some((Order::First, Agreement::CantTell))
    );
}

#[test]
fn paper_nulls_count_as_not_converged() {
    // Table 2: PELU is "—" on alexnet, so AReLU wins there in the paper.
    let t = table("table2");
    assert_eq!(
        paper_order(&t, "arelu", "pelu", "alexnet"),
        Some(Order::First)
    );
    let t4 = table("table4");
    let runs = [run("alexnet", "arelu", 0, RunStatus::Finished, 0.5)];
    let grid = &Grid::build(&runs, Layout::ActivationsByModel, &[], &[])[0];
    let mut with_cifar100 = grid.clone();
    with_cifar100.context = vec![("dataset".into(), "cifar100".into())];
    let cmp = compare(&with_cifar100, &t4, &[]);
    // PELU is "—" in every column: AReLU wins all of them in the paper.
    let pelu = cmp.claims.iter().find(|c| c.second == "pelu");
    assert_eq!(pelu.map(|c| (c.paper_wins, c.paper_judged)), Some((3, 3)));
}
