//! candle's custom-op traits for the slice kernels, written once.
//!
//! A kernel implements [`Kernel<N>`] for its `N` inputs: its name, its
//! forward and (if it has one) its backward, each generic over the real
//! type. [`Op`] turns it into candle's `CustomOp1`, `CustomOp2` or
//! `CustomOp3`, picking `f32` or `f64` from the first input and refusing
//! other dtypes with an error that names the op.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail,
};

use super::Real;

/// A CPU tensor's storage and layout, as candle hands them to a custom op.
pub(crate) type Input<'a> = (&'a CpuStorage, &'a Layout);

/// A custom op's forward result: the storage and its shape.
pub(crate) type Output = Result<(CpuStorage, Shape)>;

/// A CPU kernel on `N` tensors, as [`Op`] runs it in candle.
pub(crate) trait Kernel<const N: usize>: Send + Sync {
    /// candle's name for the op.
    const NAME: &'static str;
    /// What the op computes, for the error about dtypes other than `f32`
    /// and `f64` ("batch norm does not take U8 tensors"); a forward that
    /// takes only one of them refuses the other itself.
    const WHAT: &'static str;

    /// The forward on inputs whose elements are `T`.
    fn forward<T: Real>(&self, inputs: [Input<'_>; N]) -> Output;

    /// The gradients of the inputs `args` given the gradient `grad` of the
    /// forward's result; `T` is the first input's type. An op without one
    /// (a backward op itself) keeps this default, an error.
    fn backward<T: Real>(&self, args: [&Tensor; N], grad: &Tensor) -> InputGrads<N> {
        let _ = (args, grad);
        bail!("{} has no backward", Self::NAME)
    }
}

/// The gradient of each of a custom op's `N` inputs (`None`: not needed).
pub(crate) type InputGrads<const N: usize> = Result<[Option<Tensor>; N]>;

/// A [`Kernel`] as a candle custom op: `x.apply_op1(Op(kernel))`.
pub(crate) struct Op<K>(pub(crate) K);

impl<K> Op<K> {
    /// The forward, on `f32` or `f64` as the first input is.
    fn forward<const N: usize>(&self, inputs: [Input<'_>; N]) -> Output
    where
        K: Kernel<N>,
    {
        let dtype = inputs.first().map_or(DType::F32, |(s, _)| s.dtype());
        match dtype {
            DType::F32 => self.0.forward::<f32>(inputs),
            DType::F64 => self.0.forward::<f64>(inputs),
            _ => bail!("{} does not take {dtype:?} tensors", K::WHAT),
        }
    }

    /// The backward, on `f32` or `f64` as the first input is.
    fn backward<const N: usize>(&self, args: [&Tensor; N], grad: &Tensor) -> InputGrads<N>
    where
        K: Kernel<N>,
    {
        let dtype = args.first().map_or(DType::F32, |a| a.dtype());
        match dtype {
            DType::F32 => self.0.backward::<f32>(args, grad),
            DType::F64 => self.0.backward::<f64>(args, grad),
            _ => bail!("{} does not take {dtype:?} tensors", K::WHAT),
        }
    }
}

impl<K: Kernel<1>> CustomOp1 for Op<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Output {
        self.forward([(s, l)])
    }

    fn bwd(&self, arg: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let [g] = self.backward([arg], grad)?;
        Ok(g)
    }
}

impl<K: Kernel<2>> CustomOp2 for Op<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Output {
        self.forward([(s1, l1), (s2, l2)])
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Grads2> {
        let [ga, gb] = self.backward([a, b], grad)?;
        Ok((ga, gb))
    }
}

/// The gradients of a two-input op.
type Grads2 = (Option<Tensor>, Option<Tensor>);
/// The gradients of a three-input op.
type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl<K: Kernel<3>> CustomOp3 for Op<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Output {
        self.forward([(s1, l1), (s2, l2), (s3, l3)])
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, c: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let [ga, gb, gc] = self.backward([a, b, c], grad)?;
        Ok((ga, gb, gc))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;

    /// Doubles its input; no backward.
    struct Double;

    impl Kernel<1> for Double {
        const NAME: &'static str = "test-double";
        const WHAT: &'static str = "doubling";
        fn forward<T: Real>(&self, [(s, l)]: [Input<'_>; 1]) -> Output {
            let x = super::super::storage_slice::<T>(s, l)?;
            let y: Vec<T> = x.iter().map(|&v| v + v).collect();
            Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
        }
    }

    #[test]
    fn runs_f32_and_f64_and_names_the_op_for_other_dtypes() {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::new(&[1.0f64, -2.5], &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .expect("tensor");
            let y = x.apply_op1_no_bwd(&Op(Double)).expect("forward");
            let y: Vec<f64> = y
                .to_dtype(DType::F64)
                .and_then(|t| t.to_vec1())
                .expect("values");
            assert_eq!(y, [2.0, -5.0]);
        }
        let x = Tensor::new(&[1u32, 2], &Device::Cpu).expect("tensor");
        let err = x
            .apply_op1_no_bwd(&Op(Double))
            .expect_err("u32 refused")
            .to_string();
        assert!(err.contains("doubling does not take U32 tensors"), "{err}");
    }

    #[test]
    fn a_kernel_without_backward_says_so() {
        let x = candle_core::Var::new(&[1.0f32, 2.0], &Device::Cpu).expect("var");
        let y = x.as_tensor().apply_op1(Op(Double)).expect("forward");
        let err = y
            .sum_all()
            .and_then(|s| s.backward())
            .expect_err("no backward");
        assert!(
            err.to_string().contains("test-double has no backward"),
            "{err}"
        );
    }
}
