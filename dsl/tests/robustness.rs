//! No input makes the parser or the elaborator panic, hang or blow up:
//! random bytes, random token soups and random mutations of the real model
//! files all end in a network or in diagnostics.
//!
//! The case count is small by default so the suite stays fast; for a long
//! run: `PROPTEST_CASES=200000 cargo test --release -p acbench-dsl --test robustness`.

use std::sync::LazyLock;

use acbench_dsl::ir::Value;
use acbench_dsl::parse;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "input",
    "block",
    "network",
    "repeat",
    "residual",
    "concat",
    "branch",
    "dense",
    "conv",
    "bn",
    "lrn",
    "maxpool",
    "avgpool",
    "gap",
    "dropout",
    "flatten",
    "linear",
    "act",
    "act@fc",
    "@",
    "same",
    "valid",
    "true",
    "false",
    "c",
    "k",
    "s",
    "n",
    "x",
    "cba",
    "classes",
    "size",
    "channels",
    "stride=",
    "pad=",
    "groups=",
    "k=",
    "c=",
    "=",
    "(",
    ")",
    "{",
    "}",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "0",
    "1",
    "2",
    "3",
    "7",
    "32",
    "3x32x32",
    "1x28x28",
    "0.5",
    "1e-3",
    "1e999",
    "9223372036854775807",
    "99999999999999999999",
    "16777216",
    "-1",
    "#",
    "//",
    "\n",
    " ",
    "é",
    "\u{0}",
];

static MODELS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/models");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    texts.sort();
    texts
});

/// Parses and elaborates with a few argument sets; only panics matter.
fn run(text: &str, args: &[(String, Value)]) {
    if let Ok(module) = parse(text, "fuzz.acnet") {
        let _ = module.networks();
        let _ = module.elaborate(None, &[]);
        if let Ok(net) = module.elaborate(None, args) {
            // The IR's own arithmetic must not overflow on anything accepted.
            let _ = net.param_count();
            let _ = net.walk().iter().map(|n| n.output.numel()).sum::<usize>();
            // Every accepted network names each node uniquely.
            let mut paths: Vec<&str> = net.walk().iter().map(|n| n.path.as_str()).collect();
            let total = paths.len();
            paths.sort_unstable();
            paths.dedup();
            assert_eq!(paths.len(), total, "duplicate node paths in:\n{text}");
        }
    } else if let Err(d) = parse(text, "fuzz.acnet") {
        let _ = d.to_plain_string();
        for e in d.errors() {
            let _ = e.line_col();
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Duplicate(usize, usize),
    Swap(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match *e {
            Edit::Delete(a, n) => {
                let a = a % len;
                let b = (a + n).min(chars.len());
                if a < b {
                    chars.drain(a..b);
                }
            }
            Edit::Insert(a, t) => {
                let a = a % (chars.len() + 1);
                chars.splice(a..a, t.chars());
            }
            Edit::Duplicate(a, n) => {
                let a = a % len;
                let b = (a + n).min(chars.len());
                if a < b {
                    let piece: Vec<char> = chars[a..b].to_vec();
                    chars.splice(b..b, piece);
                }
            }
            Edit::Swap(a, b) => {
                if !chars.is_empty() {
                    let (a, b) = (a % chars.len(), b % chars.len());
                    chars.swap(a, b);
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn args() -> impl Strategy<Value = Vec<(String, Value)>> {
    let value = prop_oneof![
        (-3i64..300).prop_map(Value::Int),
        any::<i64>().prop_map(Value::Int),
        (-1.0f64..2.0).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Word("same".into())),
    ];
    let name = prop::sample::select(vec![
        "classes", "size", "channels", "k", "drop", "depth", "n1", "bogus",
    ]);
    prop::collection::vec((name.prop_map(String::from), value), 0..4)
}

/// Statements that are well formed, so that elaboration (shape rules,
/// projections, naming) rather than the parser sees most of the inputs.
fn statement(calls: bool) -> impl Strategy<Value = String> {
    let num = prop_oneof![
        Just("1"),
        Just("2"),
        Just("3"),
        Just("c"),
        Just("k"),
        Just("c / 2"),
        Just("0"),
        Just("k * 3")
    ];
    let pad = prop_oneof![Just("same"), Just("valid"), Just("0"), Just("1"), Just("2")];
    let leaf = prop_oneof![
        (num.clone(), num.clone(), num.clone(), pad.clone())
            .prop_map(|(c, k, s, p)| format!("conv({c}, {k}, stride={s}, pad={p})")),
        (num.clone(), num.clone(), pad.clone())
            .prop_map(|(k, s, p)| format!("maxpool({k}, stride={s}, pad={p})")),
        (num.clone(), pad).prop_map(|(k, p)| format!("avgpool({k}, pad={p})")),
        num.clone().prop_map(|n| format!("linear({n})")),
        // Inside the block itself a call would be recursion.
        num.clone().prop_map(move |n| if calls {
            format!("blk({n})")
        } else {
            "act".into()
        }),
        prop::sample::select(vec![
            "bn",
            "act",
            "act@fc",
            "gap",
            "flatten",
            "lrn",
            "dropout(0.5)",
            "conv(c, pad=same)"
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        let body = prop::collection::vec(inner, 0..4).prop_map(|v| v.join(" "));
        prop_oneof![
            (num.clone(), body.clone()).prop_map(|(n, b)| format!("repeat {n} {{ {b} }}")),
            body.clone().prop_map(|b| format!("residual {{ {b} }}")),
            prop::collection::vec(body.clone(), 1..4).prop_map(|bs| {
                let branches: Vec<String> =
                    bs.iter().map(|b| format!("branch {{ {b} }}")).collect();
                format!("concat {{ {} }}", branches.join(" "))
            }),
            (num.clone(), body).prop_map(|(n, b)| format!("dense {n} {{ {b} }}")),
        ]
    })
}

fn program() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(statement(false), 0..4),
        prop::collection::vec(statement(true), 0..8),
        prop::sample::select(vec!["1x8x8", "3x16x16", "2x5x7", "16", "(c, 9, 9)"]),
    )
        .prop_map(|(block, net, input)| {
            format!(
                "block blk(c, k=3) {{ {} }}\nnetwork n(c=4, k=2) {{ input {input} {} }}",
                block.join(" "),
                net.join(" ")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), a in args()) {
        run(&String::from_utf8_lossy(&bytes), &a);
    }

    #[test]
    fn token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..120), a in args()) {
        run(&tokens.join(" "), &a);
        run(&tokens.concat(), &a);
    }

    #[test]
    fn mutated_models(which in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..6), a in args()) {
        if !MODELS.is_empty() {
            let text = &MODELS[which.index(MODELS.len())];
            run(&apply(text, &edits), &a);
        }
    }

    #[test]
    fn well_formed_programs(text in program(), a in args()) {
        run(&text, &a);
    }

    #[test]
    fn real_models_with_random_arguments(which in any::<prop::sample::Index>(), a in args()) {
        if !MODELS.is_empty() {
            run(&MODELS[which.index(MODELS.len())], &a);
        }
    }
}
