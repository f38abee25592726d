//! Inverted dropout's mask: kept units are scaled by `1/(1-rate)` so that
//! evaluation needs no rescaling.
//!
//! Both training paths draw their masks here, one `f32` from the run's
//! dropout stream per element in row-major order, so a run's numbers do
//! not depend on the path that trained it.

use candle_core::WithDType;
use rand::Rng;

/// Fills `mask` with `1/(1-rate)` (kept) or 0 (dropped), one draw per
/// element in order.
pub fn fill_mask<T: WithDType>(rng: &mut impl Rng, rate: f64, mask: &mut [T]) {
    let keep = (1.0 - rate) as f32;
    let scale = T::from_f64(f64::from(1.0 / keep));
    for m in mask {
        *m = if rng.random::<f32>() < keep {
            scale
        } else {
            T::zero()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn one_draw_per_element_in_order() {
        let mut a = vec![0f32; 1000];
        fill_mask(&mut ChaCha8Rng::seed_from_u64(3), 0.25, &mut a);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for v in &a {
            let kept = rng.random::<f32>() < 0.75;
            assert_eq!(*v, if kept { 1.0 / 0.75 } else { 0.0 });
        }
        let dropped = a.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&dropped), "{dropped} dropped");
        let mut b = vec![0f64; 1000];
        fill_mask(&mut ChaCha8Rng::seed_from_u64(3), 0.25, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| f64::from(*x) == *y));
    }
}
