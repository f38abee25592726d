use super::*;

#[test]
fn model_names_resolve_and_unknown_ones_list_the_shipped() {
    for m in MODELS {
        let net = BenchModel::resolve(m.name)
            .expect("shipped")
            .elaborate()
            .expect("elaborates for Fashion-MNIST");
        assert_eq!(net.output, Shape::Flat(10), "{}", m.name);
        let Shape::Image { c, h, w } = net.input else {
            panic!("{}: takes {}", m.name, net.input);
        };
        let want_c = m.channels.map_or(1, |c| c as usize);
        assert_eq!(c, want_c, "{} channels", m.name);
        if let Some(size) = m.size {
            assert_eq!((h, w), (size as usize, size as usize), "{} size", m.name);
        }
    }
    let err = BenchModel::resolve("resnet21")
        .err()
        .expect("unknown")
        .to_string();
    assert!(
        err.contains("convnet, vgg-small, resnet20, alexnet, vgg, vgg-v, googlenet, resnet, densenet, resnet50"),
        "the message lists the shipped models: {err}"
    );
    assert!(err.contains("small, paper"), "and the groups: {err}");
}

#[test]
fn the_paper_models_take_three_channels_at_their_sizes() {
    let input = |name: &str| {
        BenchModel::resolve(name)
            .and_then(|m| m.elaborate())
            .expect("elaborates")
            .input
    };
    assert_eq!(input("alexnet"), Shape::Image { c: 3, h: 32, w: 32 });
    assert_eq!(input("densenet"), Shape::Image { c: 3, h: 32, w: 32 });
    assert_eq!(input("resnet50"), Shape::Image { c: 3, h: 84, w: 84 });
    assert_eq!(input("convnet"), Shape::Image { c: 1, h: 28, w: 28 });
    assert_eq!(input("resnet20"), Shape::Image { c: 1, h: 32, w: 32 });
}

#[test]
fn groups_expand_in_order_and_repeats_are_dropped() {
    let names = |v: &[&str]| model_names(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(names(&[]), ["convnet", "vgg-small", "resnet20"]);
    assert_eq!(
        names(&["paper"]),
        [
            "alexnet",
            "vgg",
            "vgg-v",
            "googlenet",
            "resnet",
            "densenet",
            "resnet50"
        ]
    );
    assert_eq!(
        names(&["resnet20", "small", "x.acnet"]),
        ["resnet20", "convnet", "vgg-small", "x.acnet"]
    );
}

#[test]
fn activation_sets_and_explicit_bindings_combine() {
    let all = [
        "relu", "arelu", "tanh", "sigmoid", "swish", "atanh", "asigmoid",
    ];
    assert_eq!(activations(None, &[]), all);
    assert_eq!(activations(Some(BenchActSet::All), &[]), all);
    assert_eq!(
        activations(Some(BenchActSet::Piecewise), &[]),
        ["relu", "arelu"]
    );
    assert_eq!(
        activations(Some(BenchActSet::Smooth), &["relu".into(), "tanh".into()]),
        ["tanh", "sigmoid", "swish", "atanh", "asigmoid", "relu"]
    );
    assert_eq!(activations(None, &["prelu".into()]), ["prelu"]);
}

#[test]
fn the_default_activations_exist_in_the_shipped_plugins() {
    let registry = super::super::plugins::registry(&crate::cli::PluginArgs { plugins: vec![] })
        .expect("shipped plugins load");
    for act in activations(None, &[]) {
        assert!(
            registry.get(&act).is_ok(),
            "{act} is not a shipped activation"
        );
    }
}

#[test]
fn bindings_split_on_spaces() {
    let b = parse_binding("arelu fc=relu").expect("valid");
    assert_eq!(
        b.default.as_ref().map(|s| s.activation.as_str()),
        Some("arelu")
    );
    assert!(b.slots.contains_key("fc"));
    assert!(parse_binding("  ").is_err());
}
