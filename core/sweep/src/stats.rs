//! The statistics helpers scripts get: `mean`, `std`, `argmax`, `rank`.
//!
//! Values are script numbers (integers or floats). `argmax` and `rank` take
//! `()` and NaN as the worst value, because a diverged or failed run has
//! no accuracy (`final_acc` is `()`) and must rank last, not stop the
//! script; `mean` and `std` refuse them, since an average that silently
//! skipped runs would mislead.

use acbench_reports::stats::Estimate;
use rhai::{Array, Dynamic, INT};

fn number(v: &Dynamic) -> Option<f64> {
    if let Ok(f) = v.as_float() {
        Some(f)
    } else {
        v.as_int().ok().map(|i| i as f64)
    }
}

fn numbers(what: &str, arr: &Array) -> Result<Vec<f64>, String> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            number(v).ok_or_else(|| {
                format!(
                    "{what}(): element {i} is {} ({}), not a number",
                    v,
                    v.type_name()
                )
            })
        })
        .collect()
}

/// Sort key: missing and NaN values sort below every number.
fn score(v: &Dynamic) -> f64 {
    number(v)
        .filter(|x| !x.is_nan())
        .unwrap_or(f64::NEG_INFINITY)
}

/// Arithmetic mean; an error for an empty array or a non-number.
pub fn mean(arr: &Array) -> Result<f64, String> {
    let xs = numbers("mean", arr)?;
    Estimate::of(&xs)
        .map(|e| e.mean)
        .ok_or_else(|| "mean(): the array is empty".to_owned())
}

/// Sample standard deviation (n - 1, as the report grids use); 0 for
/// fewer than two values.
pub fn std(arr: &Array) -> Result<f64, String> {
    let xs = numbers("std", arr)?;
    Ok(Estimate::of(&xs).and_then(|e| e.std).unwrap_or(0.0))
}

/// Indices sorted by value, largest first; ties keep their order.
pub fn rank(arr: &Array) -> Array {
    let mut idx: Vec<usize> = (0..arr.len()).collect();
    idx.sort_by(|&a, &b| score(&arr[b]).total_cmp(&score(&arr[a])));
    idx.into_iter().map(|i| Dynamic::from(i as INT)).collect()
}

/// Index of the largest value (the first of equals); an error when empty.
pub fn argmax(arr: &Array) -> Result<INT, String> {
    rank(arr)
        .first()
        .and_then(|d| d.as_int().ok())
        .ok_or_else(|| "argmax(): the array is empty".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(xs: &[Dynamic]) -> Array {
        xs.to_vec()
    }

    #[test]
    fn mean_and_sample_std() {
        let a = arr(&[
            Dynamic::from(1_i64),
            Dynamic::from(2.0_f64),
            Dynamic::from(3_i64),
        ]);
        assert_eq!(mean(&a), Ok(2.0));
        assert_eq!(std(&a), Ok(1.0));
        assert_eq!(std(&arr(&[Dynamic::from(5.0_f64)])), Ok(0.0));
        assert!(mean(&Array::new()).is_err());
        let err = mean(&arr(&[Dynamic::from(1.0_f64), Dynamic::UNIT]));
        assert!(err.is_err_and(|e| e.contains("element 1")));
    }

    #[test]
    fn rank_puts_missing_values_last_and_keeps_ties_in_order() {
        let a = arr(&[
            Dynamic::from(0.5_f64),
            Dynamic::UNIT,
            Dynamic::from(0.9_f64),
            Dynamic::from(f64::NAN),
            Dynamic::from(0.5_f64),
        ]);
        let r: Vec<INT> = rank(&a).iter().map(|d| d.as_int().unwrap_or(-1)).collect();
        assert_eq!(r, [2, 0, 4, 1, 3]);
        assert_eq!(argmax(&a), Ok(2));
        assert!(argmax(&Array::new()).is_err());
    }
}
