//! `acbench_reports::stats` against scipy: the expected values in
//! `fixtures/stats-goldens.json` were computed by `scripts/stats-goldens.py`
//! (scipy's `t.interval`, `ttest_rel`, `ttest_ind(equal_var=False)`,
//! `mannwhitneyu`, `t.ppf`), on hand-made edge cases and seeded random ones.

use acbench_reports::stats::{Difference, Estimate, Needed, Pairing, Verdict};
use serde_json::Value;

/// Agreement asked of every value: statrs's t quantiles and tails agree
/// with scipy's to about 1e-12 on these inputs.
const TOL: f64 = 1e-12;

fn goldens() -> Value {
    let text = include_str!("fixtures/stats-goldens.json");
    serde_json::from_str(text).expect("the fixture is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

fn close(what: &str, case: usize, ours: f64, theirs: f64) {
    let err = (ours - theirs).abs() / theirs.abs().max(1.0);
    assert!(
        err <= TOL,
        "case {case}: {what} is {ours:e}, scipy says {theirs:e} (relative error {err:e})"
    );
}

fn pairs(v: &Value) -> Vec<(u64, f64)> {
    v.as_array()
        .expect("pairs")
        .iter()
        .map(|p| (p[0].as_u64().expect("seed"), f(&p[1])))
        .collect()
}

#[test]
fn estimates_match_scipy() {
    let g = goldens();
    let cases = g["estimates"].as_array().expect("estimates");
    assert!(cases.len() >= 100);
    for (i, case) in cases.iter().enumerate() {
        let values: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(f)
            .collect();
        let e = Estimate::of(&values).expect("values");
        assert_eq!(e.n as u64, case["n"].as_u64().expect("n"));
        close("mean", i, e.mean, f(&case["mean"]));
        match case.get("std") {
            Some(std) => {
                close("std", i, e.std.expect("std"), f(std));
                let ci = e.ci.expect("interval");
                close("ci low", i, ci.lo, f(&case["ci"][0]));
                close("ci high", i, ci.hi, f(&case["ci"][1]));
            }
            None => assert!(e.std.is_none() && e.ci.is_none(), "case {i}: one value"),
        }
    }
}

#[test]
fn differences_match_scipy() {
    let g = goldens();
    let cases = g["differences"].as_array().expect("differences");
    assert!(cases.len() >= 150);
    let mut verdicts = [0usize; 3];
    for (i, case) in cases.iter().enumerate() {
        let d = Difference::of(&pairs(&case["a"]), &pairs(&case["b"])).expect("both ran");
        let pairing = match case["pairing"].as_str().expect("pairing") {
            "paired" => Pairing::Paired,
            "welch" => Pairing::Welch,
            _ => Pairing::None,
        };
        assert_eq!(d.pairing, pairing, "case {i}");
        assert_eq!(d.n as u64, case["n"].as_u64().expect("n"), "case {i}");
        close("mean difference", i, d.mean, f(&case["mean"]));
        close(
            "probability of improvement",
            i,
            d.prob_improvement,
            f(&case["prob_improvement"]),
        );
        if pairing == Pairing::None {
            assert!(d.ci.is_none() && d.p_value.is_none(), "case {i}");
            assert_eq!(
                d.verdict,
                Verdict::Inconclusive {
                    needed: Needed::Unknown
                }
            );
            continue;
        }
        close("spread", i, d.spread.expect("spread"), f(&case["spread"]));
        close("standard error", i, d.se.expect("se"), f(&case["se"]));
        let ci = d.ci.expect("interval");
        close("ci low", i, ci.lo, f(&case["ci"][0]));
        close("ci high", i, ci.hi, f(&case["ci"][1]));
        close("p-value", i, d.p_value.expect("p"), f(&case["p_value"]));
        let needed = match &case["needed"] {
            Value::Null => Needed::Unknown,
            n if n.get("seeds").is_some() => {
                Needed::Seeds(n["seeds"].as_u64().expect("n") as usize)
            }
            n => Needed::MoreThan(n["more_than"].as_u64().expect("n") as usize),
        };
        let (lo, hi) = (f(&case["ci"][0]), f(&case["ci"][1]));
        let expected = if lo > 0.0 {
            Verdict::Supports
        } else if hi < 0.0 {
            Verdict::Contradicts
        } else {
            Verdict::Inconclusive { needed }
        };
        assert_eq!(d.verdict, expected, "case {i}");
        // The verdict agrees with the t test: decided exactly when p < 0.05.
        let p = f(&case["p_value"]);
        assert_eq!(
            matches!(d.verdict, Verdict::Inconclusive { .. }),
            p >= 0.05,
            "case {i}: p = {p}"
        );
        verdicts[match d.verdict {
            Verdict::Supports => 0,
            Verdict::Contradicts => 1,
            Verdict::Inconclusive { .. } => 2,
        }] += 1;
    }
    // The random cases reach every verdict.
    assert!(verdicts.iter().all(|&n| n >= 5), "{verdicts:?}");
}
