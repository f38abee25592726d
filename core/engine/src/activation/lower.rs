//! A parsed formula lowered to candle ops, for an act layer's forward pass
//! on any device and dtype (the rules are in the module above's docs).

use acbench_dsl::formula::{BinOp, CmpOp, Cond, Expr, Func};
use candle_core::{DType, Tensor};

use crate::ops::filled;

/// An intermediate value while lowering a formula.
#[derive(Clone)]
pub(super) enum Val {
    S(f64),
    T(Tensor),
}

/// A lowered condition.
enum Mask {
    Const(bool),
    T(Tensor),
}

/// `e` at `x`, with `env[i]` the value of parameter `i`.
pub(super) fn eval(e: &Expr, x: &Tensor, env: &[Val]) -> candle_core::Result<Val> {
    Ok(match e {
        Expr::X => Val::T(x.clone()),
        Expr::Param(i) => env
            .get(*i)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("parameter index".into()))?,
        Expr::Num(v) => Val::S(*v),
        Expr::Neg(u) => match eval(u, x, env)? {
            Val::S(s) => Val::S(-s),
            Val::T(t) => Val::T(t.neg()?),
        },
        Expr::Binary(op, l, r) => binary(*op, eval(l, x, env)?, eval(r, x, env)?)?,
        Expr::Call(f, u) => match eval(u, x, env)? {
            Val::S(s) => Val::S(Expr::Call(*f, Box::new(Expr::Num(s))).eval(0.0, &[])),
            Val::T(t) => Val::T(match f {
                Func::Abs => t.abs()?,
                Func::Exp => t.exp()?,
                Func::Log => t.log()?,
                Func::Sigmoid => candle_nn::ops::sigmoid(&t)?,
                Func::Tanh => t.tanh()?,
                Func::Relu => t.relu()?,
            }),
        },
        Expr::Max(u, v) | Expr::Min(u, v) => {
            let (u, v) = (eval(u, x, env)?, eval(v, x, env)?);
            let op = if matches!(e, Expr::Max(..)) {
                CmpOp::Ge
            } else {
                CmpOp::Le
            };
            select(compare(op, &u, &v)?, u, v, x.dtype())?
        }
        Expr::Where(c, a, b) => {
            let Cond { op, lhs, rhs } = c.as_ref();
            let mask = compare(*op, &eval(lhs, x, env)?, &eval(rhs, x, env)?)?;
            // A constant condition evaluates only the branch it picks.
            match mask {
                Mask::Const(true) => eval(a, x, env)?,
                Mask::Const(false) => eval(b, x, env)?,
                m => select(m, eval(a, x, env)?, eval(b, x, env)?, x.dtype())?,
            }
        }
    })
}

fn binary(op: BinOp, l: Val, r: Val) -> candle_core::Result<Val> {
    Ok(match (l, r) {
        (Val::S(a), Val::S(b)) => Val::S(match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }),
        (Val::T(t), Val::S(s)) => Val::T(match op {
            BinOp::Add => t.affine(1.0, s)?,
            BinOp::Sub => t.affine(1.0, -s)?,
            BinOp::Mul => t.affine(s, 0.0)?,
            BinOp::Div => t.affine(1.0 / s, 0.0)?,
        }),
        (Val::S(s), Val::T(t)) => Val::T(match op {
            BinOp::Add => t.affine(1.0, s)?,
            BinOp::Sub => t.affine(-1.0, s)?,
            BinOp::Mul => t.affine(s, 0.0)?,
            BinOp::Div => t.recip()?.affine(s, 0.0)?,
        }),
        (Val::T(a), Val::T(b)) => Val::T(match op {
            BinOp::Add => a.broadcast_add(&b)?,
            BinOp::Sub => a.broadcast_sub(&b)?,
            BinOp::Mul => a.broadcast_mul(&b)?,
            BinOp::Div => a.broadcast_div(&b)?,
        }),
    })
}

fn candle_cmp(op: CmpOp) -> candle_core::op::CmpOp {
    match op {
        CmpOp::Lt => candle_core::op::CmpOp::Lt,
        CmpOp::Le => candle_core::op::CmpOp::Le,
        CmpOp::Gt => candle_core::op::CmpOp::Gt,
        CmpOp::Ge => candle_core::op::CmpOp::Ge,
        CmpOp::Eq => candle_core::op::CmpOp::Eq,
        CmpOp::Ne => candle_core::op::CmpOp::Ne,
    }
}

/// `lhs op rhs` as a mask (or a constant when both sides are scalars).
fn compare(op: CmpOp, lhs: &Val, rhs: &Val) -> candle_core::Result<Mask> {
    Ok(match (lhs, rhs) {
        (Val::S(a), Val::S(b)) => Mask::Const(op.holds(*a, *b)),
        (Val::T(t), Val::S(s)) => Mask::T(t.cmp(*s, candle_cmp(op))?),
        (Val::S(s), Val::T(t)) => {
            // s op t  <=>  t op' s with the operands swapped.
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                other => other,
            };
            Mask::T(t.cmp(*s, candle_cmp(flipped))?)
        }
        (Val::T(a), Val::T(b)) => {
            let shape = a.shape().broadcast_shape_binary_op(b.shape(), "compare")?;
            Mask::T(
                a.broadcast_as(&shape)?
                    .cmp(&b.broadcast_as(&shape)?, candle_cmp(op))?,
            )
        }
    })
}

/// `where(mask, a, b)` with broadcasting; scalars become constant tensors.
fn select(mask: Mask, a: Val, b: Val, dtype: DType) -> candle_core::Result<Val> {
    let m = match mask {
        Mask::Const(true) => return Ok(a),
        Mask::Const(false) => return Ok(b),
        Mask::T(m) => m,
    };
    if let (Val::S(sa), Val::S(sb)) = (&a, &b) {
        // Both branches constant: the mask alone decides (no gradient).
        return Ok(Val::T(m.to_dtype(dtype)?.affine(sa - sb, *sb)?));
    }
    let mut shape = m.shape().clone();
    for v in [&a, &b] {
        if let Val::T(t) = v {
            shape = shape.broadcast_shape_binary_op(t.shape(), "where")?;
        }
    }
    let device = m.device().clone();
    let branch = |v: Val| -> candle_core::Result<Tensor> {
        match v {
            Val::S(s) => filled(s, shape.dims(), dtype, &device),
            Val::T(t) if t.shape() == &shape => Ok(t),
            Val::T(t) => t.broadcast_as(&shape),
        }
    };
    let m = if m.shape() == &shape {
        m
    } else {
        m.broadcast_as(&shape)?
    };
    Ok(Val::T(m.where_cond(&branch(a)?, &branch(b)?)?))
}

#[cfg(test)]
mod tests {
    use crate::activation::Registry;
    use crate::activation::layer::tests::layer;
    use crate::error::Result;
    use acbench_plugin_api::ActivationDef;
    use candle_core::{Device, Tensor};

    #[test]
    fn constant_branches_and_folding() -> Result<()> {
        let mut reg = Registry::new();
        for (name, f) in [
            ("step", "where(x > 0, 1, 0)"),
            ("two", "2 * 3 - 4"),
            ("cmin", "min(1, x) + max(2, 3)"),
        ] {
            reg.register(ActivationDef {
                name: name.into(),
                summary: String::new(),
                params: vec![],
                formula: f.into(),
            })?;
        }
        let x = Tensor::new(&[[-1f64, 0.5, 2.0]], &Device::Cpu)?;
        let run = |n: &str| -> Result<Vec<f64>> {
            let (l, _) = layer(&reg, n, 3);
            Ok(l.forward(&x)?.flatten_all()?.to_vec1::<f64>()?)
        };
        assert_eq!(run("step")?, [0.0, 1.0, 1.0]);
        assert_eq!(run("two")?, [2.0, 2.0, 2.0]);
        assert_eq!(run("cmin")?, [2.0, 3.5, 4.0]);
        Ok(())
    }
}
