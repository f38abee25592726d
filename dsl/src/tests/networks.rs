//! Every construct, the shape rules and path naming.

use super::{image, net, net_with, paths};
use crate::ir::{Op, Padding, PoolKind, Shape, Value};
use crate::{ErrorKind, parse, parse_value};

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
fn values_from_the_command_line() {
    assert_eq!(parse_value("10"), Value::Int(10));
    assert_eq!(parse_value("0.5"), Value::Float(0.5));
    assert_eq!(parse_value("true"), Value::Bool(true));
    assert_eq!(parse_value("same"), Value::Word("same".into()));
    assert_eq!(parse_value("inf"), Value::Word("inf".into()));
}

#[test]
fn example_networks_elaborate() {
    // A small ResNet beside an Inception block (defined and checked, not
    // called): blocks with defaults, concat branches, residuals whose
    // shortcut needs a projection, `repeat`.
    let resnet = "
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
    let n = net(resnet);
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
