//! Checks for a detector's unit tests: [`Harness`] calls a
//! [`DetectorKernel`] through its `extern "C"` shims exactly as the host
//! does (so the shims' checks run too), and compares the loss's gradient
//! with central finite differences.
//!
//! `acbench plugins check` runs similar checks on a built library; these let
//! an author catch mistakes with `cargo test`.

use std::marker::PhantomData;

use super::abi::{Config, DECODED_WIDTH, Grid, HeadLayout, Truth};
use super::kernel::{
    Candidate, DetectorKernel, assign_shim, decode_shim, init_bias_shim, layout_shim, loss_shim,
};
use crate::abi::STATUS_OK;
use crate::kernel::last_error_message;

/// One ground-truth box for [`Harness::assign`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthBox {
    /// `[x, y, w, h]` in input pixels.
    pub bbox: [f32; 4],
    /// Class.
    pub class: u32,
    /// [`super::abi::FLAG_CROWD`] / [`super::abi::FLAG_DIFFICULT`] bits.
    pub flags: u32,
}

impl TruthBox {
    /// An ordinary object.
    pub fn new(bbox: [f32; 4], class: u32) -> Self {
        Self {
            bbox,
            class,
            flags: 0,
        }
    }
}

/// The worst disagreement [`Harness::gradient_check`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientCheck {
    /// Largest `|analytic - numeric|`.
    pub max_abs: f64,
    /// Largest `|analytic - numeric| / max(|analytic|, |numeric|, floor)`.
    pub max_rel: f64,
    /// The head index of the largest relative error.
    pub worst: usize,
}

/// Calls detector `K` through its shims, for `classes` classes and its
/// default settings (or others).
#[derive(Debug, Clone)]
pub struct Harness<K> {
    classes: usize,
    values: Vec<f64>,
    kernel: PhantomData<K>,
}

fn status(what: &str, code: i32) -> Result<(), String> {
    if code == STATUS_OK {
        Ok(())
    } else {
        Err(format!(
            "{what} failed (status {code}): {}",
            last_error_message()
        ))
    }
}

impl<K: DetectorKernel> Harness<K> {
    /// `K` with its default settings.
    pub fn new(classes: usize) -> Self {
        let values = K::def().settings.iter().map(|s| s.default).collect();
        Self {
            classes,
            values,
            kernel: PhantomData,
        }
    }

    /// The same with setting `name` set to `value`.
    ///
    /// # Panics
    /// When `K` has no setting `name` (a bug in the test).
    pub fn with(mut self, name: &str, value: f64) -> Self {
        let i = K::def()
            .settings
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no setting `{name}`"));
        self.values[i] = value;
        self
    }

    fn config(&self) -> Config {
        Config {
            classes: self.classes,
            setting_count: self.values.len(),
            settings: self.values.as_ptr(),
        }
    }

    /// The layout.
    pub fn layout(&self) -> Result<HeadLayout, String> {
        let mut layout = HeadLayout::default();
        // SAFETY: the config points to `self.values`; `layout` is writable.
        status("layout", unsafe {
            layout_shim::<K>(&self.config(), &mut layout)
        })?;
        Ok(layout)
    }

    /// The initial bias (NaN where the host keeps its own).
    pub fn init_bias(&self) -> Result<Vec<f32>, String> {
        let mut bias = vec![f32::NAN; self.layout()?.channels];
        // SAFETY: `bias` holds the layout's channels.
        status("init_bias", unsafe {
            init_bias_shim::<K>(&self.config(), bias.as_mut_ptr())
        })?;
        Ok(bias)
    }

    /// The targets of a batch with `images[i]` the boxes of image `i`
    /// (`grid.batch` must be `images.len()`).
    pub fn assign(&self, grid: Grid, images: &[Vec<TruthBox>]) -> Result<Vec<f32>, String> {
        assert_eq!(grid.batch, images.len(), "one list of boxes per image");
        let all: Vec<&TruthBox> = images.iter().flatten().collect();
        let boxes: Vec<[f32; 4]> = all.iter().map(|b| b.bbox).collect();
        let classes: Vec<u32> = all.iter().map(|b| b.class).collect();
        let flags: Vec<u32> = all.iter().map(|b| b.flags).collect();
        let mut offsets = vec![0];
        for image in images {
            offsets.push(offsets.last().copied().unwrap_or(0) + image.len());
        }
        let truth = Truth {
            boxes: boxes.as_ptr().cast(),
            classes: classes.as_ptr(),
            flags: flags.as_ptr(),
            offsets: offsets.as_ptr(),
        };
        let n = grid.batch * self.layout()?.target_channels * grid.height * grid.width;
        let mut targets = vec![f32::NAN; n];
        // SAFETY: every array holds what `truth` and the grid say.
        status("assign", unsafe {
            assign_shim::<K>(&self.config(), grid, &truth, targets.as_mut_ptr())
        })?;
        Ok(targets)
    }

    /// The loss terms and, with `with_grad`, the gradient of their sum.
    pub fn loss(
        &self,
        grid: Grid,
        head: &[f32],
        targets: &[f32],
        with_grad: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), String> {
        let layout = self.layout()?;
        let head_len = grid.batch * layout.channels * grid.height * grid.width;
        let target_len = grid.batch * layout.target_channels * grid.height * grid.width;
        assert_eq!(head.len(), head_len, "head length");
        assert_eq!(targets.len(), target_len, "targets length");
        let mut terms = vec![f32::NAN; K::TERMS.len()];
        let mut grad = with_grad.then(|| vec![f32::NAN; head_len]);
        let grad_ptr = grad
            .as_mut()
            .map_or(std::ptr::null_mut(), |g| g.as_mut_ptr());
        // SAFETY: lengths checked above.
        status("loss", unsafe {
            loss_shim::<K>(
                &self.config(),
                grid,
                head.as_ptr(),
                targets.as_ptr(),
                terms.as_mut_ptr(),
                grad_ptr,
            )
        })?;
        Ok((terms, grad))
    }

    /// The decoded boxes of each image, at most `capacity` each.
    pub fn decode(
        &self,
        grid: Grid,
        head: &[f32],
        threshold: f32,
        capacity: usize,
    ) -> Result<Vec<Vec<Candidate>>, String> {
        let mut out = vec![f32::NAN; grid.batch * capacity * DECODED_WIDTH];
        let mut counts = vec![0usize; grid.batch];
        assert_eq!(
            head.len(),
            grid.batch * self.layout()?.channels * grid.height * grid.width,
            "head length"
        );
        // SAFETY: the buffers hold what the ABI writes.
        status("decode", unsafe {
            decode_shim::<K>(
                &self.config(),
                grid,
                head.as_ptr(),
                threshold,
                capacity,
                out.as_mut_ptr(),
                counts.as_mut_ptr(),
            )
        })?;
        Ok((0..grid.batch)
            .map(|i| {
                out[i * capacity * DECODED_WIDTH..]
                    .chunks_exact(DECODED_WIDTH)
                    .take(counts[i])
                    .map(|r| Candidate {
                        bbox: [r[0], r[1], r[2], r[3]],
                        score: r[4],
                        class: r[5] as u32,
                    })
                    .collect()
            })
            .collect())
    }

    /// The analytic gradient of the summed loss against central finite
    /// differences (step `eps`, loss summed in `f64`) at `indices` of the
    /// head; relative errors use `floor` as the smallest scale.
    pub fn gradient_check(
        &self,
        grid: Grid,
        head: &[f32],
        targets: &[f32],
        eps: f32,
        floor: f64,
        indices: impl IntoIterator<Item = usize>,
    ) -> Result<GradientCheck, String> {
        let (_, grad) = self.loss(grid, head, targets, true)?;
        let grad = grad.unwrap_or_default();
        let total = |h: &[f32]| -> Result<f64, String> {
            let (terms, _) = self.loss(grid, h, targets, false)?;
            Ok(terms.iter().map(|&t| f64::from(t)).sum())
        };
        let mut h = head.to_vec();
        let mut check = GradientCheck {
            max_abs: 0.0,
            max_rel: 0.0,
            worst: 0,
        };
        for i in indices {
            let x = h[i];
            h[i] = x + eps;
            let up = total(&h)?;
            h[i] = x - eps;
            let down = total(&h)?;
            h[i] = x;
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let analytic = f64::from(grad[i]);
            let abs = (analytic - numeric).abs();
            let rel = abs / analytic.abs().max(numeric.abs()).max(floor);
            check.max_abs = check.max_abs.max(abs);
            if rel > check.max_rel || !rel.is_finite() {
                check.max_rel = rel;
                check.worst = i;
            }
        }
        Ok(check)
    }
}
