use super::*;
use crate::fixtures::run;

#[test]
fn mean_std_and_n_over_seeds() {
    let runs = [
        run("alexnet", "relu", 0, RunStatus::Finished, 0.80),
        run("alexnet", "relu", 1, RunStatus::Finished, 0.82),
        run("alexnet", "relu", 2, RunStatus::Finished, 0.84),
    ];
    let c = Cell::from_runs(&runs);
    assert_eq!(c.n, 3);
    assert!((c.mean.unwrap_or(0.0) - 0.82).abs() < 1e-12);
    assert!((c.std.unwrap_or(0.0) - 0.02).abs() < 1e-12);
    // 0.82 ± t(0.975, 2) · 0.02 / √3 = 0.82 ± 0.0497.
    let ci = c.ci.expect("interval");
    assert!(
        (ci.lo - 0.770317).abs() < 1e-6 && (ci.hi - 0.869683).abs() < 1e-6,
        "{ci:?}"
    );
    assert_eq!(c.display(), "0.8200 ± 0.0200 [0.7703, 0.8697] (n=3)");
    assert_eq!(c.values, [(0, 0.80), (1, 0.82), (2, 0.84)]);
    assert_eq!(Cell::from_runs(&runs[..1]).display(), "0.8000 (n=1)");
}

#[test]
fn diverged_and_failed_runs() {
    let partial = [
        run("vgg", "sigmoid", 0, RunStatus::Finished, 0.81),
        run("vgg", "sigmoid", 1, RunStatus::Finished, 0.8146),
        run("vgg", "sigmoid", 2, RunStatus::Diverged, f64::NAN),
    ];
    let c = Cell::from_runs(&partial);
    assert_eq!((c.n, c.diverged, c.failed), (2, 1, 0));
    assert_eq!(
        c.display(),
        "0.8123 ± 0.0033 [0.7831, 0.8415] (n=2, 1 diverged)"
    );
    let lost = [
        run("vgg", "pelu", 0, RunStatus::Diverged, f64::NAN),
        run("vgg", "pelu", 1, RunStatus::Diverged, f64::NAN),
    ];
    let c = Cell::from_runs(&lost);
    assert!(c.all_lost());
    assert_eq!(c.mean, None);
    assert_eq!(c.display(), "— (2 diverged)");
    let failed = [run("vgg", "pelu", 0, RunStatus::Failed, f64::NAN)];
    assert_eq!(Cell::from_runs(&failed).display(), "— (1 failed)");
    assert_eq!(Cell::default().display(), "");
    // Finished but with a NaN accuracy counts as diverged.
    let nan = [run("vgg", "tanh", 0, RunStatus::Finished, f64::NAN)];
    assert_eq!(Cell::from_runs(&nan).diverged, 1);
}

#[test]
fn grid_layout_order_and_best() {
    let runs = [
        run("vgg", "relu", 0, RunStatus::Finished, 0.7),
        run("alexnet", "swish", 0, RunStatus::Finished, 0.6),
        run("alexnet", "relu", 0, RunStatus::Finished, 0.5),
        run("alexnet", "arelu", 0, RunStatus::Finished, 0.9),
    ];
    let order = ["arelu".to_owned(), "relu".to_owned()];
    let cols = ["alexnet".to_owned(), "vgg".to_owned()];
    let grids = Grid::build(&runs, Layout::ActivationsByModel, &order, &cols);
    assert_eq!(grids.len(), 1);
    let g = &grids[0];
    assert_eq!(g.rows, ["arelu", "relu", "swish"]);
    assert_eq!(g.columns, ["alexnet", "vgg"]);
    assert_eq!(g.caption(), "dataset cifar10, optimizer sgd");
    assert!(g.cell("arelu", "vgg").is_some_and(Cell::is_empty));
    // One seed each: no leader is significantly ahead, so nothing is best;
    // a column with one result has no runner-up to beat.
    assert!((0..3).all(|r| !g.is_best(r, 0) && !g.is_best(r, 1)));
}

#[test]
fn best_only_when_significantly_ahead_of_the_runner_up() {
    let seeds = |act: &str, accs: [f64; 3]| {
        accs.into_iter()
            .enumerate()
            .map(|(s, a)| run("alexnet", act, s as u64, RunStatus::Finished, a))
            .collect::<Vec<_>>()
    };
    let clear = [
        seeds("arelu", [0.90, 0.91, 0.93]),
        seeds("relu", [0.80, 0.81, 0.82]),
        seeds("swish", [0.60, 0.61, 0.62]),
    ]
    .concat();
    let g = &Grid::build(&clear, Layout::ActivationsByModel, &[], &[])[0];
    assert!(g.is_best(0, 0) && !g.is_best(1, 0) && !g.is_best(2, 0));
    // The leader by mean, but within the noise of the runner-up.
    let close = [
        seeds("arelu", [0.90, 0.80, 0.86]),
        seeds("relu", [0.85, 0.84, 0.83]),
    ]
    .concat();
    let g = &Grid::build(&close, Layout::ActivationsByModel, &[], &[])[0];
    assert!(!g.is_best(0, 0) && !g.is_best(1, 0));
}

#[test]
fn separate_grids_per_context_and_inferred_layout() {
    let mut other = run("alexnet", "relu", 0, RunStatus::Finished, 0.5);
    other.dataset = "fashion-mnist".into();
    let runs = [run("alexnet", "relu", 0, RunStatus::Finished, 0.7), other];
    // One model on two datasets: the datasets become the columns.
    assert_eq!(Layout::infer(&runs), Layout::ActivationsByDataset);
    let grids = Grid::build(&runs, Layout::ActivationsByModel, &[], &[]);
    assert_eq!(grids.len(), 2);
    assert_eq!(grids[1].context_value("dataset"), Some("fashion-mnist"));
    let mut adam = run("alexnet", "relu", 0, RunStatus::Finished, 0.5);
    adam.optimizer = "adam".into();
    let runs = [run("alexnet", "relu", 0, RunStatus::Finished, 0.7), adam];
    assert_eq!(Layout::infer(&runs), Layout::ModelActivationsByOptimizer);
    let g = &Grid::build(&runs, Layout::ModelActivationsByOptimizer, &[], &[])[0];
    assert_eq!(g.rows, ["alexnet/relu"]);
    assert_eq!(g.columns, ["sgd", "adam"]);
    assert_eq!(g.caption(), "dataset cifar10");
}
