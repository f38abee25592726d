use super::*;

fn seeded(values: &[f64]) -> Vec<(u64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u64, v))
        .collect()
}

#[test]
fn one_value_has_no_spread_or_interval() {
    let e = Estimate::of(&[0.8]).expect("one value");
    assert_eq!((e.n, e.mean, e.std, e.ci), (1, 0.8, None, None));
    assert!(Estimate::of(&[]).is_none());
}

#[test]
fn t_critical_values_from_tables() {
    // Two-sided 95%: the printed tables' values.
    for (df, t) in [
        (1.0, 12.706),
        (2.0, 4.303),
        (4.0, 2.776),
        (9.0, 2.262),
        (30.0, 2.042),
    ] {
        assert!(
            (t_critical(df) - t).abs() < 5e-4,
            "df {df}: {}",
            t_critical(df)
        );
    }
    assert!(t_critical(0.0).is_nan());
}

#[test]
fn constant_differences_decide_at_once() {
    // Differences exactly equal in binary: no spread at all.
    let d = Difference::of(&seeded(&[1.5, 2.5, 3.5]), &seeded(&[1.0, 2.0, 3.0])).expect("ran");
    assert_eq!(d.pairing, Pairing::Paired);
    assert_eq!((d.mean, d.spread), (0.5, Some(0.0)));
    assert_eq!(d.verdict, Verdict::Supports);
    assert_eq!(d.p_value, Some(0.0));
    assert_eq!(d.prob_improvement, 6.0 / 9.0);
    let same = Difference::of(&seeded(&[0.5, 0.6]), &seeded(&[0.5, 0.6])).expect("ran");
    assert_eq!(same.p_value, Some(1.0));
    assert_eq!(
        same.verdict,
        Verdict::Inconclusive {
            needed: Needed::Unknown
        }
    );
}

#[test]
fn the_needed_seeds_would_decide_and_one_fewer_would_not() {
    for (m, s) in [(0.01, 0.02), (0.003, 0.03), (0.05, 0.01), (-0.02, 0.05)] {
        let Needed::Seeds(n) = needed_seeds(m, s) else {
            panic!("{m} {s}: a count expected");
        };
        let half = |n: usize| t_critical((n - 1) as f64) * s / (n as f64).sqrt();
        assert!(half(n) < m.abs(), "{m} {s}: {n} decides");
        assert!(
            n == 2 || half(n - 1) >= m.abs(),
            "{m} {s}: {} would not",
            n - 1
        );
    }
    assert_eq!(needed_seeds(1e-6, 1.0), Needed::MoreThan(MAX_NEEDED));
    assert_eq!(needed_seeds(0.0, 1.0), Needed::Unknown);
    assert_eq!(needed_seeds(f64::NAN, 1.0), Needed::Unknown);
}

#[test]
fn verdicts_read_as_words_and_serialise() {
    let undecided = Verdict::Inconclusive {
        needed: Needed::Seeds(12),
    };
    assert_eq!(undecided.to_string(), "inconclusive (n≈12 would decide)");
    assert_eq!(Verdict::Contradicts.to_string(), "contradicts");
    let json = serde_json::to_string(&undecided).expect("json");
    assert_eq!(
        json,
        r#"{"verdict":"inconclusive","needed":{"kind":"seeds","seeds":12}}"#
    );
}

#[test]
fn probability_of_improvement_counts_ties_half_and_skips_nan() {
    // (1,1) ties, the other three pairs are wins.
    assert_eq!(prob_improvement(&[1.0, 2.0], &[1.0, 0.0]), 0.875);
    assert_eq!(prob_improvement(&[f64::NAN], &[1.0]), 0.0);
}

#[test]
fn verdicts_beyond_a_margin() {
    // +0.05 with a 95% interval of about ±0.0248.
    let d =
        Difference::of(&seeded(&[0.85, 0.86, 0.87]), &seeded(&[0.80, 0.82, 0.81])).expect("ran");
    assert_eq!(d.verdict, Verdict::Supports);
    assert_eq!(d.verdict_beyond(0.02), Verdict::Supports);
    assert_eq!(d.verdict_beyond(0.09), Verdict::Contradicts);
    assert!(matches!(
        d.verdict_beyond(0.05),
        Verdict::Inconclusive { .. }
    ));
    // "Within 0.1 of it or better" holds for a small deficit too.
    let behind =
        Difference::of(&seeded(&[0.80, 0.82, 0.81]), &seeded(&[0.85, 0.86, 0.87])).expect("ran");
    assert_eq!(behind.verdict_beyond(-0.1), Verdict::Supports);
    assert_eq!(behind.verdict, Verdict::Contradicts);
}
