//! The paper's baselines: fixed activations and earlier adaptive ones.
//! Initial values are the `standard` preset of DESIGN.md; the `paper-code`
//! preset (LReLU slope 0.2, PReLU starting at 0) overrides them per run.

use acbench_plugin_api::{ActivationDef, ParamSpec};

fn def(name: &str, summary: &str, params: Vec<ParamSpec>, formula: &str) -> ActivationDef {
    ActivationDef {
        name: name.into(),
        summary: summary.into(),
        params,
        formula: formula.into(),
    }
}

/// ReLU, LReLU, PReLU, Swish, PELU, FReLU, Sigmoid and Tanh.
pub fn definitions() -> Vec<ActivationDef> {
    vec![
        def("relu", "max(x, 0)", vec![], "relu(x)"),
        def(
            "lrelu",
            "leaky ReLU max(x, s*x) with a fixed slope s",
            vec![ParamSpec::fixed("s", 0.01)],
            "max(x, s * x)",
        ),
        def(
            "prelu",
            "parametric ReLU max(x,0) + p*min(x,0) (He et al. 2015)",
            vec![ParamSpec::scalar("p", 0.25)],
            "relu(x) + p * min(x, 0)",
        ),
        def(
            "swish",
            "x*sigmoid(beta*x) with a trainable beta",
            vec![ParamSpec::scalar("beta", 1.0)],
            "x * sigmoid(beta * x)",
        ),
        def(
            "pelu",
            "parametric ELU (Trottier et al. 2017), a and b kept positive",
            vec![
                ParamSpec::scalar("a", 1.0).positive(0.1),
                ParamSpec::scalar("b", 1.0).positive(0.1),
            ],
            // min(x, 0) inside exp keeps the unused branch finite, so its
            // (masked) gradient is 0 rather than 0 * inf = NaN.
            "where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))",
        ),
        def(
            "frelu",
            "flexible ReLU relu(x) + bias (Qiu et al. 2018), layer-wise bias",
            vec![ParamSpec::scalar("bias", -1.0)],
            "relu(x) + bias",
        ),
        def("sigmoid", "logistic sigmoid", vec![], "sigmoid(x)"),
        def("tanh", "hyperbolic tangent", vec![], "tanh(x)"),
    ]
}
