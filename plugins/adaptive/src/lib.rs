//! The paper's adaptive activations: four learnable scalars per layer,
//! initialised so that each starts as its fixed counterpart
//! (a = b = 1, c = d = 0).

use acbench_plugin_api::{ActivationDef, ParamSpec};

fn abcd() -> Vec<ParamSpec> {
    vec![
        ParamSpec::scalar("a", 1.0),
        ParamSpec::scalar("b", 1.0),
        ParamSpec::scalar("c", 0.0),
        ParamSpec::scalar("d", 0.0),
    ]
}

/// ASigmoid, ATanh and AReLU.
pub fn definitions() -> Vec<ActivationDef> {
    vec![
        ActivationDef {
            name: "asigmoid".into(),
            summary: "adaptive sigmoid b*sigmoid(a*x+c)+d".into(),
            params: abcd(),
            formula: "b * sigmoid(a * x + c) + d".into(),
        },
        ActivationDef {
            name: "atanh".into(),
            summary: "adaptive tanh b*tanh(a*x+c)+d".into(),
            params: abcd(),
            formula: "b * tanh(a * x + c) + d".into(),
        },
        ActivationDef {
            name: "arelu".into(),
            summary: "adaptive ReLU max(a*x+c, b*x+d); ties go to the first argument".into(),
            params: abcd(),
            // With a=b, c=d the two arguments tie everywhere: `max` gives the
            // whole gradient to its first argument, so a and c move first and
            // the function becomes non-linear (DESIGN.md).
            formula: "max(a * x + c, b * x + d)".into(),
        },
    ]
}
