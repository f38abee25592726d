//! Every model file in `suites/models` elaborates, and its parameter count
//! (activation parameters excluded) is pinned.
//!
//! Hand checks:
//! - convnet at 1x28x28, 10 classes: conv 1*32*9+32 = 320, conv 32*64*9+64 =
//!   18,496, linear 3136*128+128 = 401,536, linear 128*10+10 = 1,290:
//!   421,642.
//! - vgg16 at 3x32x32, 10 classes: the 13 convs hold the well-known
//!   14,714,688; five batch norms 2*(64+128+256+512+512) = 2,944; fc
//!   8192*8192+8192 twice = 134,234,112 and 8192*10+10 = 81,930:
//!   149,033,674.
//! - alexnet: conv 3*96*121+96 = 34,944; grouped conv 256*48*25+256 =
//!   307,456; conv 384*256*9+384 = 885,120; grouped conv 256*192*9+256 =
//!   442,624; fc 256*1024+1024 = 263,168 and 1024*2048+2048 = 2,099,200;
//!   batch norms 2*(96+256+384+256+1024+2048) = 8,128; fc 2048*10+10 = 20,490:
//!   4,061,130.
//! - resnet50 with 1000 classes: the well-known 25,557,032 (torchvision);
//!   with 10 classes 2048*990+990 fewer = 23,528,522, which is also
//!   resnet.acnet's count (same weights, different strides and padding).
//! - vgg-small at 1x32x32, 10 classes: convs 320 + 9,248 + 18,496 + 36,928 +
//!   73,856 + 147,584 = 286,432; fc 2048*256+256 = 524,544 and 256*10+10 =
//!   2,570: 813,546.
//! - resnet20 at 1x32x32, 10 classes: stem 144 + bn 32; stage 1 six convs
//!   16*16*9 plus bns, 14,016; stage 2 51,648 and stage 3 205,696 with their
//!   1x1 projections (16*32 + bn 64, 32*64 + bn 128); fc 650: 272,186 (the
//!   paper's option-A ResNet-20 at 3 channels has about 0.27M).

use std::path::PathBuf;

use acbench_dsl::ir::Value;
use acbench_dsl::{Module, compile_file, parse};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/models")
}

fn count(file: &str, args: &[(&str, i64)]) -> usize {
    let args: Vec<(String, Value)> = args
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Int(*v)))
        .collect();
    match compile_file(models_dir().join(file), None, &args) {
        Ok(net) => net.param_count(),
        Err(d) => panic!("{file}: {}", d.to_plain_string()),
    }
}

/// Model file, network arguments, pinned parameter count.
type Case = (&'static str, &'static [(&'static str, i64)], usize);

#[test]
fn parameter_counts_are_pinned() {
    let cases: &[Case] = &[
        ("convnet.acnet", &[("classes", 10)], 421_642),
        ("convnet.acnet", &[("classes", 100)], 433_252),
        // convnet plus three batch norms: 2 * (32 + 64 + 128) = 448.
        ("convnet-bn.acnet", &[("classes", 10)], 422_090),
        ("convnet-bn.acnet", &[("classes", 100)], 433_700),
        ("alexnet.acnet", &[("classes", 10)], 4_061_130),
        ("alexnet.acnet", &[("classes", 100)], 4_245_540),
        ("vgg.acnet", &[("classes", 10)], 149_033_674),
        ("vgg.acnet", &[("classes", 100)], 149_771_044),
        ("vgg-v.acnet", &[("classes", 10)], 154_343_370),
        ("vgg-v.acnet", &[("classes", 100)], 155_080_740),
        ("googlenet.acnet", &[("classes", 10)], 6_326_426),
        ("googlenet.acnet", &[("classes", 100)], 6_418_676),
        ("resnet.acnet", &[("classes", 10)], 23_528_522),
        ("resnet.acnet", &[("classes", 100)], 23_712_932),
        ("densenet.acnet", &[("classes", 10)], 10_236_298),
        ("densenet.acnet", &[("classes", 100)], 10_365_988),
        ("vgg-small.acnet", &[("classes", 10)], 813_546),
        ("vgg-small.acnet", &[("classes", 100)], 836_676),
        ("resnet20.acnet", &[("classes", 10)], 272_186),
        ("resnet20.acnet", &[("classes", 100)], 278_036),
        ("resnet50.acnet", &[("classes", 1000)], 25_557_032),
        (
            "resnet50.acnet",
            &[("classes", 10), ("size", 224)],
            23_528_522,
        ),
        (
            "resnet50.acnet",
            &[("classes", 100), ("size", 84)],
            23_712_932,
        ),
    ];
    let mut wrong = Vec::new();
    for (file, args, expected) in cases {
        let got = count(file, args);
        if got != *expected {
            wrong.push(format!("{file} {args:?}: {got} (pinned {expected})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_model_file_is_covered_and_takes_the_common_arguments() {
    let mut files: Vec<String> = std::fs::read_dir(models_dir())
        .expect("suites/models exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".acnet"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "alexnet.acnet",
            "convnet-bn.acnet",
            "convnet.acnet",
            "densenet.acnet",
            "fcos-tiny.acnet",
            "googlenet.acnet",
            "resnet.acnet",
            "resnet20.acnet",
            "resnet50.acnet",
            "vgg-small.acnet",
            "vgg-v.acnet",
            "vgg.acnet",
            "yolo-tiny.acnet"
        ]
    );
    for f in &files {
        let text = std::fs::read_to_string(models_dir().join(f)).expect("readable");
        let module: Module =
            parse(&text, f).unwrap_or_else(|d| panic!("{f}: {}", d.to_plain_string()));
        let nets = module.networks();
        assert_eq!(nets.len(), 1, "{f}");
        for arg in ["classes", "channels", "size"] {
            assert!(nets[0].takes(arg), "{f} lacks `{arg}`");
        }
        assert!(text.starts_with('#'), "{f} needs a header comment");
        let net = module
            .elaborate(None, &[])
            .unwrap_or_else(|d| panic!("{f}: {}", d.to_plain_string()));
        let mut paths: Vec<&str> = net.walk().iter().map(|n| n.path.as_str()).collect();
        let total = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), total, "{f}: node paths are not unique");
        assert!(!net.act_sites().is_empty(), "{f} has no `act`");
    }
}

#[test]
fn models_serve_other_datasets() {
    // Fashion-MNIST-shaped input for the CIFAR models and vice versa: the
    // models whose pooling arithmetic allows it elaborate at other sizes.
    for (file, args) in [
        ("convnet.acnet", vec![("channels", 3), ("size", 32)]),
        ("resnet.acnet", vec![("channels", 1), ("size", 28)]),
        ("googlenet.acnet", vec![("size", 64)]),
        ("densenet.acnet", vec![("size", 64), ("classes", 100)]),
        ("alexnet.acnet", vec![("size", 64)]),
        ("vgg.acnet", vec![("channels", 1), ("size", 28)]),
        ("vgg-small.acnet", vec![("channels", 3)]),
        ("resnet20.acnet", vec![("channels", 3), ("size", 28)]),
    ] {
        count(file, &args);
    }
}

#[test]
fn shapes_and_paths_of_the_paper_models() {
    let net = compile_file(
        models_dir().join("resnet50.acnet"),
        None,
        &[("size".into(), Value::Int(84))],
    )
    .unwrap_or_else(|d| panic!("{}", d.to_plain_string()));
    let paths: Vec<String> = net
        .walk()
        .iter()
        .map(|n| format!("{} {}", n.path, n.output))
        .collect();
    // 84 -> 42 (conv) -> 21 (pool) -> 21, 11, 6, 3 through the stages.
    for want in [
        "conv0 64x42x42",
        "maxpool0 64x21x21",
        "stage0.bottleneck0.residual0 256x21x21",
        "stage0.bottleneck0.residual0.proj.conv 256x21x21",
        "stage1.bottleneck0.residual0.proj.conv 512x11x11",
        "stage2.bottleneck5.act0 1024x6x6",
        "stage3.bottleneck2.residual0 2048x3x3",
        "linear0 1000",
    ] {
        assert!(paths.iter().any(|p| p == want), "missing {want}");
    }
    // 17 convs carry activations in each of the 16 bottlenecks' 3 plus the stem.
    assert_eq!(net.act_sites().len(), 1 + 16 * 3);

    let dense = compile_file(models_dir().join("densenet.acnet"), None, &[]).expect("densenet");
    let outs: Vec<String> = dense
        .body
        .iter()
        .map(|n| format!("{} {}", n.path, n.output))
        .collect();
    assert_eq!(
        outs,
        [
            "conv0 48x16x16",
            "dense0 192x16x16",
            "transition0.bn0 192x16x16",
            "transition0.act0 192x16x16",
            "transition0.conv0 96x16x16",
            "transition0.dropout0 96x16x16",
            "transition0.avgpool0 96x8x8",
            "dense1 384x8x8",
            "transition1.bn0 384x8x8",
            "transition1.act0 384x8x8",
            "transition1.conv0 192x8x8",
            "transition1.dropout0 192x8x8",
            "transition1.avgpool0 192x4x4",
            "dense2 1344x4x4",
            "transition2.bn0 1344x4x4",
            "transition2.act0 1344x4x4",
            "transition2.conv0 672x4x4",
            "transition2.dropout0 672x4x4",
            "transition2.avgpool0 672x2x2",
            "dense3 1440x2x2",
            "bn0 1440x2x2",
            "act0 1440x2x2",
            "gap0 1440",
            "linear0 10",
        ]
    );

    let google = compile_file(models_dir().join("googlenet.acnet"), None, &[]).expect("googlenet");
    let incep: Vec<String> = google
        .body
        .iter()
        .filter(|n| n.path.starts_with("inception"))
        .map(|n| format!("{} {}", n.path, n.output))
        .collect();
    assert_eq!(
        incep,
        [
            "inception0.concat0 256x4x4",
            "inception1.concat0 480x4x4",
            "inception2.concat0 512x2x2",
            "inception3.concat0 512x2x2",
            "inception4.concat0 512x2x2",
            "inception5.concat0 528x2x2",
            "inception6.concat0 832x2x2",
            "inception7.concat0 832x1x1",
            "inception8.concat0 1024x1x1",
        ]
    );
}

#[test]
fn shapes_of_the_bench_models() {
    let net = compile_file(models_dir().join("resnet20.acnet"), None, &[])
        .unwrap_or_else(|d| panic!("{}", d.to_plain_string()));
    let paths: Vec<String> = net
        .walk()
        .iter()
        .map(|n| format!("{} {}", n.path, n.output))
        .collect();
    for want in [
        "cba0.conv0 16x32x32",
        "stage0.basic2.act0 16x32x32",
        "stage1.basic0.residual0.proj.conv 32x16x16",
        "stage2.basic0.residual0.proj.bn 64x8x8",
        "stage2.basic2.act0 64x8x8",
        "gap0 64",
    ] {
        assert!(paths.iter().any(|p| p == want), "missing {want}: {paths:?}");
    }
    // The stem and two per basic block: 1 + 9 * 2.
    assert_eq!(net.act_sites().len(), 19);
    // Only the two shape-changing blocks get a projection.
    assert_eq!(paths.iter().filter(|p| p.contains(".proj.conv")).count(), 2);

    let vgg = compile_file(models_dir().join("vgg-small.acnet"), None, &[])
        .unwrap_or_else(|d| panic!("{}", d.to_plain_string()));
    let outs: Vec<String> = vgg
        .body
        .iter()
        .filter(|n| !n.path.starts_with("group"))
        .map(|n| format!("{} {}", n.path, n.output))
        .collect();
    assert_eq!(
        outs,
        ["flatten0 2048", "linear0 256", "act0 256", "linear1 10"]
    );
    assert_eq!(vgg.act_sites().len(), 7);
}

#[test]
fn bn_momentum_left_out_is_the_callers() {
    use acbench_dsl::ir::Op;
    use acbench_dsl::{CompileOptions, compile_file_with};
    let momenta = |options: &CompileOptions, file: &str| -> Vec<f64> {
        let net = compile_file_with(models_dir().join(file), None, &[], options)
            .unwrap_or_else(|d| panic!("{file}: {}", d.to_plain_string()));
        net.body
            .iter()
            .filter_map(|n| match n.op {
                Op::BatchNorm { momentum, .. } => Some(momentum),
                _ => None,
            })
            .collect()
    };
    let torch = CompileOptions {
        bn_momentum: CompileOptions::TORCH_BN_MOMENTUM,
    };
    assert_eq!(
        momenta(&CompileOptions::default(), "convnet-bn.acnet"),
        [0.99; 3]
    );
    assert_eq!(momenta(&torch, "convnet-bn.acnet"), [0.9; 3]);
    // Written in the file, it stays what the file says.
    let text = "network m(classes=10) {\n  input(1, 4, 4)\n  flatten\n  linear(8) bn(momentum=0.5) act\n  linear(8) bn act\n  linear(classes)\n}\n";
    let net = parse(text, "m.acnet")
        .and_then(|m| m.elaborate_with(None, &[], &torch))
        .expect("compiles");
    let got: Vec<f64> = net
        .body
        .iter()
        .filter_map(|n| match n.op {
            Op::BatchNorm { momentum, .. } => Some(momentum),
            _ => None,
        })
        .collect();
    assert_eq!(got, [0.5, 0.9]);
}
