use super::*;
use crate::fixtures::run;

fn shipped() -> (PaperTables, Claims) {
    let tables = PaperTables::load().expect("tables");
    let claims = Claims::load(&tables).expect("claims");
    (tables, claims)
}

#[test]
fn shipped_claims_load_and_the_paper_counts_match_a_hand_count() {
    let (tables, claims) = shipped();
    assert!(claims.0.len() >= 20, "{}", claims.0.len());
    let judged = judge_all(&claims, &tables, &[]);
    let paper = |id: &str| {
        judged
            .iter()
            .find(|j| j.claim.id == id)
            .unwrap_or_else(|| panic!("no claim {id}"))
            .paper
    };
    // Counted by hand from tables.yaml (a null cell loses).
    for (id, yes, of) in [
        ("surpass-relu-and-swish-almost-all", 51, 58),
        ("adaptive-beats-base", 19, 24),
        ("asigmoid-beats-sigmoid-cifar10", 5, 5),
        ("atanh-beats-tanh-cifar10", 3, 3),
        ("adaptive-beats-base-cifar100", 6, 6),
        ("arelu-beats-relu-cifar100", 2, 2),
        ("arelu-beats-other-adaptive-cifar10", 13, 15),
        ("arelu-beats-prelu-cifar10", 3, 3),
        ("arelu-best-cifar100", 3, 3),
        ("arelu-best-optimizers-googlenet", 4, 4),
        ("arelu-best-optimizers-resnet", 4, 4),
        ("arelu-near-best-googlenet-momentum", 0, 1),
        ("arelu-near-best-resnet-adam", 0, 1),
        ("arelu-best-voc-classification", 1, 1),
        ("prelu-best-miniimagenet", 1, 1),
        ("arelu-prelu-nearly-equal-resnet50", 2, 2),
        ("arelu-near-best-detection", 9, 9),
        ("arelu-best-classification-overall", 20, 28),
    ] {
        assert_eq!(paper(id), Some((yes, of)), "{id}");
    }
    assert_eq!(paper("adaptive-converge-faster-cifar10"), None);
    // With no runs every judged claim is "not run", never a disagreement.
    for j in &judged {
        let expected = if j.claim.kind == ClaimKind::Other {
            Outcome::NotJudged
        } else {
            Outcome::NotRun
        };
        assert_eq!(j.outcome, expected, "{}", j.claim.id);
    }
}

fn seeds(model: &str, act: &str, accs: &[f64]) -> Vec<RunResult> {
    accs.iter()
        .enumerate()
        .map(|(s, &a)| run(model, act, s as u64, RunStatus::Finished, a))
        .collect()
}

#[test]
fn units_are_judged_on_the_exact_setting_and_counted_with_the_quantifier() {
    let (tables, claims) = shipped();
    let claim = claims
        .0
        .iter()
        .find(|c| c.id == "asigmoid-beats-sigmoid-cifar10")
        .expect("claim");
    // Clearly ahead on alexnet, nothing else run: "every" is not yet met.
    let mut results = [
        seeds("alexnet", "asigmoid", &[0.85, 0.86, 0.87]),
        seeds("alexnet", "sigmoid", &[0.80, 0.80, 0.81]),
    ]
    .concat();
    let j = judge(claim, &tables, &results);
    assert_eq!(j.outcome, Outcome::Inconclusive);
    assert_eq!(j.counts, [1, 0, 0, 4]);
    assert_eq!(j.units[0].ours, Some(Verdict::Supports));
    assert!(
        j.units[1]
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("not run"))
    );
    // Behind on vgg: "every" is contradicted whatever the rest would show.
    results.extend(seeds("vgg", "asigmoid", &[0.70, 0.71, 0.70]));
    results.extend(seeds("vgg", "sigmoid", &[0.80, 0.81, 0.80]));
    let j = judge(claim, &tables, &results);
    assert_eq!(j.outcome, Outcome::Contradicts);
    assert_eq!(
        j.summary,
        "1 of 5 units support, 1 contradict, 3 not run (every must support)"
    );
    // The same runs on another dataset are not this claim's setting.
    let mut elsewhere = results.clone();
    for r in &mut elsewhere {
        r.dataset = "fashion-mnist".into();
    }
    assert_eq!(judge(claim, &tables, &elsewhere).outcome, Outcome::NotRun);
}

#[test]
fn a_diverged_side_loses_as_the_paper_counts_it() {
    let (tables, claims) = shipped();
    let claim = claims
        .0
        .iter()
        .find(|c| c.id == "asigmoid-beats-sigmoid-cifar10")
        .expect("claim");
    let mut results = seeds("alexnet", "asigmoid", &[0.85]);
    results.push(run("alexnet", "sigmoid", 0, RunStatus::Diverged, f64::NAN));
    let j = judge(claim, &tables, &results);
    assert_eq!(j.units[0].ours, Some(Verdict::Supports));
    assert_eq!(
        j.units[0].note.as_deref(),
        Some("sigmoid diverged in every run")
    );
}

#[test]
fn best_within_a_tolerance() {
    let (tables, claims) = shipped();
    let claim = claims
        .0
        .iter()
        .find(|c| c.id == "arelu-near-best-googlenet-momentum")
        .expect("claim");
    let mut results = Vec::new();
    for (act, accs) in [
        ("arelu", [0.860, 0.861, 0.862]),
        ("relu", [0.8601, 0.8611, 0.8621]),
        ("lrelu", [0.70, 0.71, 0.72]),
        ("prelu", [0.70, 0.71, 0.72]),
        ("swish", [0.70, 0.71, 0.72]),
    ] {
        for mut r in seeds("googlenet", act, &accs) {
            r.optimizer = "momentum".into();
            results.push(r);
        }
    }
    // 0.0001 behind relu, well within 0.01: best within the tolerance.
    let j = judge(claim, &tables, &results);
    assert_eq!(j.units.len(), 1);
    assert_eq!(j.units[0].ours, Some(Verdict::Supports), "{:?}", j.units[0]);
    assert_eq!(j.outcome, Outcome::Supports);
    assert_eq!(j.paper, Some((0, 1)));
}

#[test]
fn claims_file_errors_name_the_line_and_claim() {
    let tables = PaperTables::load().expect("tables");
    let yaml = "claims:\n  - id: a\n    text: t\n    where: w\n    kind: pairs\n    pairs: [[arelu, relu]]\n    tables: [table1]\n  - id: a\n    text: t\n    where: w\n    kind: other\n";
    let err = Claims::parse(yaml, "claims.yaml", &tables)
        .expect_err("duplicate id")
        .to_string();
    assert!(
        err.starts_with("claims.yaml:8: `claims.a`: the id is used before, on line 2"),
        "{err}"
    );
    let yaml = "claims:\n  - id: b\n    text: t\n    where: w\n    kind: pairs\n    pairs: [[arelu, relu]]\n    tables: [table1]\n    columns: [lenet]\n";
    let err = Claims::parse(yaml, "claims.yaml", &tables)
        .expect_err("bad column")
        .to_string();
    assert!(err.contains("`lenet` is not a column of table1"), "{err}");
    let yaml =
        "claims:\n  - id: c\n    text: t\n    where: w\n    kind: pairs\n    tables: [table9]\n";
    let err = Claims::parse(yaml, "claims.yaml", &tables)
        .expect_err("no pairs")
        .to_string();
    assert!(err.contains("`pairs` must name at least one pair"), "{err}");
}
