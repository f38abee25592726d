//! Every kind of error: its message and its location.

use super::{error, errors, net};
use crate::ir::{Shape, Value};
use crate::{ErrorKind, compile_file, parse};

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
