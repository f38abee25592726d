//! Language tests: every construct, the shape rules, path naming and every
//! kind of error (message and location).

use crate::ir::{Network, Op, Padding, PoolKind, Shape, Value};
use crate::{ErrorKind, compile_file, parse, parse_value};

fn net_with(src: &str, args: &[(&str, Value)]) -> Network {
    let args: Vec<(String, Value)> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    match parse(src, "m.acnet").and_then(|m| m.elaborate(None, &args)) {
        Ok(n) => n,
        Err(d) => panic!("{}", d.to_plain_string()),
    }
}

fn net(src: &str) -> Network {
    net_with(src, &[])
}

/// All errors as `line:col kind message`.
fn errors(src: &str) -> Vec<String> {
    match parse(src, "m.acnet").and_then(|m| m.elaborate(None, &[])) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(d) => d
            .errors()
            .iter()
            .map(|e| {
                let (l, c) = e.line_col().unwrap_or((0, 0));
                format!("{l}:{c} {:?} {}", e.kind(), e.message())
            })
            .collect(),
    }
}

fn error(src: &str) -> String {
    let all = errors(src);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap_or_default()
}

fn paths(n: &Network) -> Vec<String> {
    n.walk()
        .iter()
        .map(|n| format!("{} {}", n.path, n.output))
        .collect()
}

fn image(c: usize, h: usize, w: usize) -> Shape {
    Shape::Image { c, h, w }
}

#[test]
fn comments_input_forms_and_bare_calls() {
    let n = net(
        "# hash\n// slashes\ninput 3x8x8 # trailing\nnetwork n { conv(4) // after\n bn act flatten }",
    );
    assert_eq!(n.input, image(3, 8, 8));
    assert_eq!(
        paths(&n),
        ["conv0 4x6x6", "bn0 4x6x6", "act0 4x6x6", "flatten0 144"]
    );
    let n = net("network n(channels=2, size=5) { input(channels, size + 1, size * 2) gap }");
    assert_eq!(n.input, image(2, 6, 10));
    assert_eq!(n.output, Shape::Flat(2));
    let n = net("network n(f=7) { input(f) linear(3) bn act }");
    assert_eq!((n.input, n.output), (Shape::Flat(7), Shape::Flat(3)));
    // The network's own input wins over the file's.
    let n = net("input 1x4x4\nnetwork n { input 2x3x3 act }");
    assert_eq!(n.input, image(2, 3, 3));
}

#[test]
fn several_networks_pick_by_name_or_last() {
    let src = "input 1x8x8\nnetwork a(classes=10) { flatten linear(classes) }\nnetwork b { gap }";
    let m = parse(src, "m.acnet").expect("parses");
    let sigs = m.networks();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0].name, "a");
    assert_eq!(sigs[0].params[0].default, Some(Value::Int(10)));
    assert!(sigs[0].takes("classes") && !sigs[1].takes("classes"));
    assert_eq!(
        m.elaborate(None, &[]).map(|n| n.name).ok().as_deref(),
        Some("b")
    );
    let a = m
        .elaborate(Some("a"), &[("classes".into(), Value::Int(3))])
        .expect("a");
    assert_eq!(
        (a.output, a.args.clone()),
        (Shape::Flat(3), vec![("classes".to_string(), Value::Int(3))])
    );
    let e = m.elaborate(Some("c"), &[]).expect_err("no c");
    assert_eq!(e.errors()[0].message(), "no network `c` in this file");
    assert_eq!(e.errors()[0].help_text(), Some("it defines `a`, `b`"));
    let e = m
        .elaborate(Some("a"), &[("clases".into(), Value::Int(3))])
        .expect_err("typo");
    assert_eq!(
        e.errors()[0].message(),
        "network `a` has no argument `clases`"
    );
    assert_eq!(
        e.errors()[0].help_text(),
        Some("valid arguments: `classes`")
    );
    assert_eq!(e.errors()[0].kind(), ErrorKind::UnknownArgument);
}

#[test]
fn network_arguments_and_defaults() {
    let src = "network n(c, k=c+1) { input 1x9x9 conv(c, k) }";
    let m = parse(src, "m.acnet").expect("parses");
    assert_eq!(
        m.networks()[0].params[1].default,
        None,
        "depends on a required parameter"
    );
    let n = m
        .elaborate(None, &[("c".into(), Value::Int(2))])
        .expect("elaborates");
    assert_eq!(n.output, image(2, 7, 7));
    let e = m.elaborate(None, &[]).expect_err("c is required");
    assert_eq!(
        e.to_plain_string(),
        "m.acnet:1:11: network `n` needs a value for `c`\n"
    );
    let e = m
        .elaborate(None, &[("c".into(), Value::Float(2.5))])
        .expect_err("float channels");
    assert_eq!(
        e.errors()[0].message(),
        "`c` must be an integer, found number 2.5"
    );
}

#[test]
fn conv_shapes_padding_and_params() {
    let n = net("network n { input 3x32x32 conv(8, 7, stride=2, pad=same) }");
    let Op::Conv2d(c) = &n.body[0].op else {
        panic!("conv")
    };
    // TensorFlow SAME: out 16, total (16-1)*2 + 7 - 32 = 5 -> 2 before, 3 after.
    assert_eq!(
        c.padding,
        Padding {
            top: 2,
            bottom: 3,
            left: 2,
            right: 3
        }
    );
    assert_eq!(n.output, image(8, 16, 16));
    assert_eq!(n.param_count(), 8 * 3 * 49 + 8);
    let n = net("network n { input 4x10x10 conv(8, 3, 1, 1, 2, false, 2) }");
    let Op::Conv2d(c) = &n.body[0].op else {
        panic!("conv")
    };
    assert_eq!(
        (c.groups, c.bias, c.dilation, c.kernel),
        (2, false, (2, 2), (3, 3))
    );
    // Dilated 3x3 spans 5: 10 + 2 - 5 + 1 = 8.
    assert_eq!(n.output, image(8, 8, 8));
    assert_eq!(n.param_count(), 8 * 2 * 9);
    let n = net("network n { input 1x9x9 conv(1, 3, stride=2, pad=valid) conv(1, k=1) }");
    assert_eq!(n.output, image(1, 4, 4));
}

#[test]
fn pooling_norms_and_vectors() {
    let n = net(
        "network n { input 2x9x9 maxpool(2) avgpool(3, stride=1, pad=1, count_pad=true) lrn bn(1e-5, 0.9) \
         dropout(0.5) flatten linear(4, bias=false) bn act@fc }",
    );
    assert_eq!(
        paths(&n),
        [
            "maxpool0 2x4x4",
            "avgpool0 2x4x4",
            "lrn0 2x4x4",
            "bn0 2x4x4",
            "dropout0 2x4x4",
            "flatten0 32",
            "linear0 4",
            "bn1 4",
            "act0 4"
        ]
    );
    let Op::Pool(p) = &n.body[0].op else {
        panic!("pool")
    };
    assert_eq!((p.kind, p.stride), (PoolKind::Max, (2, 2)));
    let Op::Pool(p) = &n.body[1].op else {
        panic!("pool")
    };
    assert!(p.count_include_pad);
    assert_eq!(
        n.body[2].op,
        Op::Lrn {
            radius: 2,
            alpha: 1e-4,
            beta: 0.75,
            bias: 1.0
        }
    );
    assert_eq!(
        n.body[3].op,
        Op::BatchNorm {
            channels: 2,
            eps: 1e-5,
            momentum: 0.9
        }
    );
    assert_eq!(n.body[4].op, Op::Dropout { rate: 0.5 });
    assert_eq!(
        n.body[8].op,
        Op::Act {
            slot: Some("fc".into())
        }
    );
    assert_eq!(n.param_count(), 4 + 32 * 4 + 8);
    assert_eq!(n.act_sites().len(), 1);
}

#[test]
fn blocks_repeat_and_path_names() {
    let src = "
        block cba(c, k=3, s=1) { conv(c, k, stride=s, pad=same) bn act }
        block pair(c) { cba(c) cba(c, k=1) }
        network n { input 1x8x8
          cba(2) repeat 2 { cba(4) act } pair(3) conv(5) act
        }";
    let n = net(src);
    let ps: Vec<String> = n.walk().iter().map(|n| n.path.clone()).collect();
    assert_eq!(
        ps,
        [
            "cba0.conv0",
            "cba0.bn0",
            "cba0.act0",
            "cba1.conv0",
            "cba1.bn0",
            "cba1.act0",
            "act0",
            "cba2.conv0",
            "cba2.bn0",
            "cba2.act0",
            "act1",
            "pair0.cba0.conv0",
            "pair0.cba0.bn0",
            "pair0.cba0.act0",
            "pair0.cba1.conv0",
            "pair0.cba1.bn0",
            "pair0.cba1.act0",
            "conv0",
            "act2"
        ]
    );
}

#[test]
fn residual_identity_and_projection() {
    let n = net("network n { input 4x8x8 residual { conv(4, 3, pad=same) bn } act }");
    let Op::Residual { body, shortcut } = &n.body[0].op else {
        panic!("residual")
    };
    assert!(shortcut.is_empty());
    assert_eq!(body[0].path, "residual0.conv0");
    let n = net("network n { input 4x7x7 residual { conv(8, 3, stride=2, pad=same) bn } }");
    let Op::Residual { shortcut, .. } = &n.body[0].op else {
        panic!("residual")
    };
    let names: Vec<&str> = shortcut.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(names, ["residual0.proj.conv", "residual0.proj.bn"]);
    let Op::Conv2d(c) = &shortcut[0].op else {
        panic!("conv")
    };
    assert_eq!(
        (c.in_channels, c.out_channels, c.stride, c.bias),
        (4, 8, (2, 2), false)
    );
    assert_eq!(shortcut[0].output, image(8, 4, 4));
    // Without a batch norm in the body the projection is a conv with bias.
    let n = net("network n { input 4x8x8 residual { conv(6, 1) } }");
    let Op::Residual { shortcut, .. } = &n.body[0].op else {
        panic!("residual")
    };
    assert_eq!(shortcut.len(), 1);
    assert_eq!(n.param_count(), (6 * 4 + 6) * 2);
    // Batch norm nested in a block inside the body counts.
    let n = net("block b(c) { conv(c, 1) bn } network n { input 4x8x8 residual { b(6) } }");
    let Op::Residual { shortcut, .. } = &n.body[0].op else {
        panic!("residual")
    };
    assert_eq!(shortcut.len(), 2);
}

#[test]
fn residual_errors() {
    assert_eq!(
        error("network n { input 4x5x5 residual { conv(4, 2) } }"),
        "1:25 Shape residual body turns 5x5 into 4x4: no 1x1 strided projection matches"
    );
    assert_eq!(
        error("network n { input(8) residual { linear(4) } }"),
        "1:22 Shape residual body turns 8 into 4"
    );
}

#[test]
fn concat_and_dense() {
    let src = "network n { input 3x8x8 concat { branch { conv(2, 1) } branch { conv(5, 3, pad=same) act } branch { } } }";
    let n = net(src);
    assert_eq!(n.output, image(10, 8, 8));
    assert_eq!(
        paths(&n),
        [
            "concat0 10x8x8",
            "concat0.branch0.conv0 2x8x8",
            "concat0.branch1.conv0 5x8x8",
            "concat0.branch1.act0 5x8x8"
        ]
    );
    let n = net("network n(k=2) { input 4x5x5 dense 3 { bn act conv(k, 3, pad=same) } gap }");
    assert_eq!(n.body[0].output, image(10, 5, 5));
    let Op::Dense { layers } = &n.body[0].op else {
        panic!("dense")
    };
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[2][2].path, "dense0.layer2.conv0");
    assert_eq!(layers[2][2].input, image(8, 5, 5));
    assert_eq!(
        n.param_count(),
        (2 * 4 + 2 * 6 + 2 * 8) + (4 + 6 + 8) * 2 * 9 + 3 * 2
    );
    let n = net("network n { input(3) concat { branch { linear(2) } branch { } } dense 0 { } }");
    assert_eq!(n.output, Shape::Flat(5));
}

#[test]
fn concat_and_dense_errors() {
    assert_eq!(
        error(
            "network n {\n input 1x8x8\n concat { branch { conv(2, 1) } branch { conv(2, 2) } }\n}"
        ),
        "3:33 Shape concat branches disagree: 8x8 vs 7x7"
    );
    assert_eq!(
        error("network n { input 1x8x8 concat { branch { gap } branch { } } }"),
        "1:49 Shape concat branches disagree: 1 vs 1x8x8 (feature maps and vectors cannot be joined)"
    );
    assert_eq!(
        error("network n { input 1x8x8 dense 2 { conv(2, 3) } }"),
        "1:25 Shape dense layer 0 turns 1x8x8 into 2x6x6; it must keep the spatial size"
    );
    assert_eq!(
        error("network n { input 1x8x8 concat { } }"),
        "1:25 Shape concat needs at least one branch"
    );
}

#[test]
fn expressions() {
    let cases = [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3),
        ("-7 / 2", -4),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("7 % -3", -2),
        ("10 - 2 - 3", 5),
        ("-(-(4))", 4),
        ("2 * -3 + 10", 4),
    ];
    for (expr, want) in cases {
        // A network argument default carries the value out.
        let src = format!("network n(v={expr}) {{ input 1 }}");
        let n = net(&src);
        assert_eq!(n.args[0].1, Value::Int(want), "{expr}");
    }
    for (expr, want) in [
        ("1e-3", 1e-3),
        ("3 / 2.0", 1.5),
        ("1 + 0.5", 1.5),
        ("2.5e1 % 7", 4.0),
        ("-1.5", -1.5),
    ] {
        let n = net(&format!("network n(v={expr}) {{ input 1 }}"));
        assert_eq!(n.args[0].1, Value::Float(want), "{expr}");
    }
    let n = net("network n(v=true, w=same) { input 1 }");
    assert_eq!(n.args[0].1, Value::Bool(true));
    assert_eq!(n.args[1].1, Value::Word("same".into()));
}

#[test]
fn expression_errors() {
    assert_eq!(
        error("network n(v=1/0) { input 1 }"),
        "1:15 DivisionByZero division by zero"
    );
    assert_eq!(
        error("network n(v=1.0%0) { input 1 }"),
        "1:17 DivisionByZero division by zero"
    );
    assert_eq!(
        error("network n(v=9223372036854775807+1) { input 1 }"),
        "1:13 Overflow integer overflow"
    );
    assert_eq!(
        error("network n(v=99999999999999999999) { input 1 }"),
        "1:13 Overflow integer `99999999999999999999` is too large"
    );
    assert_eq!(
        error("network n(v=1e999) { input 1 }"),
        "1:13 Overflow number `1e999` is too large"
    );
    assert_eq!(
        error("network n(v=true+1) { input 1 }"),
        "1:13 Type arithmetic needs numbers, found `true`"
    );
    assert_eq!(
        error("network n(c=4) { input 1x4x4 conv(cc) }"),
        "1:35 UnknownName unknown name `cc`; did you mean `c`?"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(4, pad=sme) }"),
        "1:37 UnknownName unknown name `sme`; did you mean `same`?"
    );
}

#[test]
fn value_and_type_errors() {
    assert_eq!(
        error("network n { input 1x4x4 conv(1.5) }"),
        "1:30 Type `c` must be an integer, found number 1.5"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(0) }"),
        "1:30 Value `c` must be positive, found 0"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(2, pad=-1) }"),
        "1:37 Value `pad` must be non-negative, found -1"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(2, pad=true) }"),
        "1:37 Type `pad` must be an integer, `same` or `valid`, found `true`"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(2, bias=1) }"),
        "1:38 Type `bias` must be `true` or `false`, found integer 1"
    );
    assert_eq!(
        error("network n { input 3x4x4 conv(4, groups=2) }"),
        "1:40 Value groups=2 must divide both input channels (3) and output channels (4)"
    );
    assert_eq!(
        error("network n { input 1x4x4 dropout(1.0) }"),
        "1:33 Value dropout probability must be in [0, 1)"
    );
    assert_eq!(
        error("network n { input 1x4x4 bn(0) }"),
        "1:28 Value eps must be positive"
    );
    assert_eq!(
        error("network n { input 1x4x4 maxpool(2, pad=2) }"),
        "1:40 Value pool padding 2 is more than half the 2x2 window"
    );
    assert_eq!(
        error("network n { input 0x4x4 }"),
        "1:19 Value input dimension must be positive, found 0"
    );
    assert_eq!(
        error("network n { input 1x4x4 repeat -1 { } }"),
        "1:32 Value repeat count must be non-negative, found -1"
    );
}

#[test]
fn shape_errors() {
    assert_eq!(
        error("network n {\n  input 1x4x4\n  conv(2, 5)\n}"),
        "3:3 Shape conv window 5x5 is larger than its 4x4 input"
    );
    assert_eq!(
        error("network n { input 1x4x4 maxpool(8) }"),
        "1:25 Shape maxpool window 8x8 is larger than its 4x4 input"
    );
    assert_eq!(
        error("network n { input 1x4x4 linear(3) }"),
        "1:25 Shape linear expects a vector, got the feature map 1x4x4"
    );
    let e = parse("network n { input 1x4x4 linear(3) }", "m.acnet")
        .and_then(|m| m.elaborate(None, &[]));
    assert_eq!(
        e.expect_err("error").errors()[0].help_text(),
        Some("add `flatten` (or `gap`) before it")
    );
    assert_eq!(
        error("network n { input(4) conv(2) }"),
        "1:22 Shape conv expects a feature map, got a vector of 4"
    );
    assert_eq!(net("network n { input(4) flatten }").output, Shape::Flat(4));
    assert_eq!(
        error("network n { act }"),
        "1:9 Shape network `n` has no input shape"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        error("network n {\n  conv(4,, 3)\n}"),
        "2:10 Syntax syntax error: expected argument or `)`, found `,`"
    );
    assert_eq!(
        error("network n {\n  conv(4\n"),
        "2:8 Syntax syntax error: expected operator, `)` or `,`, found end of file"
    );
    assert_eq!(
        error("netwrk n { }"),
        "1:1 Syntax syntax error: expected `block`, `input` or `network`, found `netwrk`"
    );
    assert_eq!(
        error("network n { repeat { } }"),
        "1:20 Syntax syntax error: expected expression, found `{`"
    );
}

#[test]
fn call_errors() {
    assert_eq!(
        error("network n { input 1x4x4 cnv(2) }"),
        "1:25 UnknownLayer unknown layer `cnv`; did you mean `conv`?"
    );
    assert_eq!(
        error("block cba(c) { }\nnetwork n { input 1x4x4 cab(2) }"),
        "2:25 UnknownLayer unknown layer `cab`; did you mean `cba`?"
    );
    assert_eq!(
        error("network n { input 1x4x4 frobnicate }"),
        "1:25 UnknownLayer unknown layer `frobnicate`"
    );
    assert_eq!(
        error("network n { input 1x4x4 linear(1, true, 3) }"),
        "1:41 Arity `linear` takes at most 2 positional arguments, found more"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(k=3) }"),
        "1:25 Arity `conv` needs argument `c`"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(2, kernel=3) }"),
        "1:33 UnknownArgument `conv` has no argument `kernel`; it takes `c`, `k`, `stride`, `pad`, `groups`, `bias`, `dilation`"
    );
    assert_eq!(
        error("network n { input 1x4x4 conv(2, c=3) }"),
        "1:33 DuplicateArgument argument `c` of `conv` given twice"
    );
    assert_eq!(
        error("network n { input 1x4x4 gap(1) }"),
        "1:29 Arity `gap` takes at most 0 positional arguments, found more"
    );
    assert_eq!(
        error("network n { input 1x4x4 bn@x }"),
        "1:28 Syntax only `act` takes a slot name, not `bn`"
    );
    assert_eq!(
        error("block b(c) { conv(c) }\nnetwork n { input 1x4x4 b() }"),
        "2:25 Arity `b` needs argument `c`"
    );
}

#[test]
fn errors_inside_blocks_label_the_call_site() {
    let src = "block inner(c) { conv(c, 5) }\nblock outer(c) { inner(c) }\nnetwork n { input 1x4x4 outer(2) }";
    let d = parse(src, "m.acnet")
        .and_then(|m| m.elaborate(None, &[]))
        .expect_err("too small");
    let e = &d.errors()[0];
    assert_eq!(e.line_col(), Some((1, 18)));
    assert_eq!(
        e.label_texts(),
        [
            "input is 4x4 here",
            "in this call of `inner`",
            "in this call of `outer`"
        ]
    );
    // The rendered report names the file, line and column and points at them.
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    handler.render_report(&mut out, &d).expect("renders");
    assert!(out.contains("[m.acnet:1:18]"), "{out}");
    assert!(
        out.contains("conv window 5x5 is larger than its 4x4 input"),
        "{out}"
    );
    assert!(out.contains("in this call of `outer`"), "{out}");
}

#[test]
fn recursion_and_duplicates() {
    assert_eq!(
        error("block a(c) { a(c) }\nnetwork n { input 1 }"),
        "1:14 Recursion block `a` calls itself"
    );
    assert_eq!(
        error("block a { b }\nblock b { residual { c } }\nblock c { a }\nnetwork n { input 1 }"),
        "3:11 Recursion blocks call each other in a cycle: a -> b -> c -> a"
    );
    let all = errors(
        "block a { }\nblock a { }\nnetwork n(x, x) { input 1 }\nnetwork n { input 1 }\nblock conv { }",
    );
    assert_eq!(
        all,
        [
            "2:7 Duplicate block `a` is defined twice",
            "3:14 Duplicate parameter `x` is declared twice",
            "4:9 Duplicate network `n` is defined twice",
            "5:7 Duplicate block `conv` has the name of a built-in layer",
        ]
    );
    // `c1` called first and `c` called eleventh would both be `c10`.
    assert_eq!(
        error("block c1 { }\nnetwork n { input 1 }"),
        "1:7 Duplicate block name `c1` ends in a digit"
    );
}

#[test]
fn several_errors_at_once_in_source_order() {
    let all = errors("network n {\n input 1x4x4\n cnv(2)\n conv(2, kernel=3)\n gap(q)\n}");
    assert_eq!(
        all,
        [
            "3:2 UnknownLayer unknown layer `cnv`; did you mean `conv`?",
            "4:10 UnknownArgument `conv` has no argument `kernel`; it takes `c`, `k`, `stride`, `pad`, `groups`, `bias`, `dilation`",
            "5:6 UnknownName unknown name `q`",
            "5:6 Arity `gap` takes at most 0 positional arguments, found more",
        ]
    );
}

#[test]
fn misplaced_input() {
    assert_eq!(
        error("network n { act input 1 }"),
        "1:17 Syntax `input` must be the first statement of a network"
    );
    assert_eq!(
        error("block b { input 1 }\nnetwork n { input 1 }"),
        "1:11 Syntax `input` is not allowed inside a block"
    );
    assert_eq!(
        error("network n { input(1, 2) }"),
        "1:13 Arity input takes 1 or 3 dimensions, found 2"
    );
    assert_eq!(
        error("input 1\ninput 2\nnetwork n { }"),
        "2:1 Duplicate more than one file-level `input`"
    );
    assert_eq!(
        error("input 1x1x1"),
        "1:1 UnknownNetwork this file defines no network"
    );
}

#[test]
fn deepest_accepted_nesting_is_fine() {
    // 1 level for the network's braces, 63 for the rest.
    let parens = format!(
        "network n(v={}1{}) {{ input 1 }}",
        "(".repeat(63),
        ")".repeat(63)
    );
    assert_eq!(net(&parens).args[0].1, Value::Int(1));
    let nested = format!(
        "network n {{ input 1x4x4 {}act{} }}",
        "residual { ".repeat(63),
        " }".repeat(63)
    );
    let n = net(&nested);
    assert_eq!(n.walk().len(), 64);
    assert_eq!(
        n.walk()[63].path,
        format!("{}act0", "residual0.".repeat(63))
    );
}

#[test]
fn limits() {
    let deep = format!(
        "network n(v={}1{}) {{ input 1 }}",
        "(".repeat(100),
        ")".repeat(100)
    );
    assert_eq!(error(&deep), "1:76 Limit nesting deeper than 64 levels");
    let long = format!("network n(v={}) {{ input 1 }}", vec!["1"; 300].join("+"));
    assert_eq!(
        error(&long),
        "1:13 Limit expression has 300 operands; at most 256 are allowed"
    );
    assert_eq!(
        error("network n { input 1 repeat 16000000 { repeat 16000000 { } } }"),
        "1:39 Limit elaboration takes more than 2000000 steps"
    );
    assert_eq!(
        error("network n { input 1 repeat 200000 { act } }"),
        "1:37 Limit network has more than 100000 nodes"
    );
    assert_eq!(
        error("network n { input 1x4x4 repeat 99999999 { } }"),
        "1:32 Limit repeat count 99999999 is larger than 16777216"
    );
    assert_eq!(
        error("network n { input 16000000x16000000x16000000 }"),
        "1:13 Limit shape 16000000x16000000x16000000 has more than 1099511627776 elements"
    );
    assert_eq!(
        error("network n { input(16000000) linear(16000000) }"),
        "1:29 Limit layer has more than 1099511627776 parameters"
    );
    assert_eq!(
        error("network n { input(1000000) repeat 2000 { linear(1000000) } }"),
        "1:42 Limit network has more than 1125899906842624 parameters"
    );
    let big = "#".repeat(crate::MAX_SOURCE_BYTES + 1);
    assert_eq!(
        error(&big),
        format!(
            "1:1 Limit model file is {} bytes; at most 1048576 are accepted",
            big.len()
        )
    );
}

#[test]
fn values_from_the_command_line() {
    assert_eq!(parse_value("10"), Value::Int(10));
    assert_eq!(parse_value("0.5"), Value::Float(0.5));
    assert_eq!(parse_value("true"), Value::Bool(true));
    assert_eq!(parse_value("same"), Value::Word("same".into()));
    assert_eq!(parse_value("inf"), Value::Word("inf".into()));
}

#[test]
fn compile_file_names_the_missing_path() {
    let e = compile_file("/nonexistent/model.acnet", None, &[]).expect_err("missing");
    assert_eq!(e.errors()[0].kind(), ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("cannot read `/nonexistent/model.acnet`"),
        "{e}"
    );
}

#[test]
fn unicode_columns_count_characters() {
    assert_eq!(
        error("# héllo wörld\nnetwork n { input 1x4x4 cnv }"),
        "2:25 UnknownLayer unknown layer `cnv`; did you mean `conv`?"
    );
    assert_eq!(
        error("network n { input 1 é }"),
        "1:21 Syntax syntax error: expected name, `input`, `repeat`, `residual`, `concat`, `dense` or `}`, found `é`"
    );
}

#[test]
fn documented_examples_elaborate() {
    // The sketch in DESIGN.md "Model DSL".
    let design = "
        input 3x32x32
        block cba(c, k=3, s=1) { conv(c, k, stride=s, pad=same) bn act }
        block inception(c1, c3r, c3, c5r, c5, pp) {
          concat { branch { cba(c1, k=1) }  branch { cba(c3r, k=1) cba(c3) }
                   branch { cba(c5r, k=1) cba(c5, k=5) }
                   branch { maxpool(3, stride=1, pad=1) cba(pp, k=1) } }
        }
        block basic(c, s=1) { residual { cba(c, s=s) conv(c, 3, pad=same) bn } act }
        network resnet_small(classes=10) {
          cba(64) repeat 2 { basic(64) } basic(128, s=2) basic(128)
          gap flatten linear(classes)
        }";
    let n = net(design);
    assert_eq!((n.input, n.output), (image(3, 32, 32), Shape::Flat(10)));
    assert!(
        n.walk()
            .iter()
            .any(|n| n.path == "basic2.residual0.proj.bn")
    );
    // The example in the crate documentation.
    let doc = "
        block cba(c, k=3, s=1) { conv(c, k, stride=s, pad=same) bn act }
        block basic(c, s=1) { residual { cba(c, s=s) conv(c, 3, pad=same) bn } act }
        network small(classes=10, channels=3, size=32) {
          input(channels, size, size)
          cba(64) repeat 2 { basic(64) } basic(128, s=2)
          gap linear(classes)
        }";
    let n = net_with(doc, &[("size", Value::Int(16))]);
    assert_eq!((n.input, n.output), (image(3, 16, 16), Shape::Flat(10)));
}
