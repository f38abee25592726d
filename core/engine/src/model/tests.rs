//! The model's tests: building, the two training paths against each other
//! and against finite differences, and the shipped model files.

use acbench_dsl::ir::{Network, Op, Shape, Value};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Model;
use crate::activation::{ActBindings, Registry};
use crate::error::{Error, Result};
use crate::params::ParamKind;
use crate::rng::Seed;

/// Compiles `.acnet` text with the given network arguments.
fn compile(src: &str, args: &[(&str, &str)]) -> Network {
    let args: Vec<(String, Value)> = args
        .iter()
        .map(|(k, v)| ((*k).to_owned(), acbench_dsl::parse_value(v)))
        .collect();
    acbench_dsl::parse(src, "test.acnet")
        .and_then(|m| m.elaborate(None, &args))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

/// A small network with every layer type: input 2x6x6, 3 classes.
const EVERY_LAYER: &str = "
network every(classes=3, drop=0.5) {
  input 2x6x6
  conv(4, 3, pad=1) bn(momentum=0.9) act
  lrn(1, 0.1, 0.75, 1.0)
  residual { conv(4, 3, pad=1, groups=2) act }
  maxpool(3, stride=2, pad=same)
  concat {
    branch { conv(2, 1) }
    branch { avgpool(3, stride=1, pad=1) conv(3, 1) }
    branch { }
  }
  dense 2 { bn(momentum=0.9) act conv(2, 3, pad=1) }
  gap dropout(drop)
  linear(5) bn(momentum=0.9) act@fc
  linear(classes, bias=false)
}";

/// The convnet/ResNet constructs: a strided residual whose shortcut gets a
/// projection, pooling with asymmetric padding, flatten, and dropout at
/// rates 0.5 and 0. Input 2x8x8, 3 classes.
const RESIDUAL_NET: &str = "
network res(classes=3) {
  input 2x8x8
  conv(4, 3, pad=1) bn(momentum=0.9) act
  residual { conv(4, 3, pad=1, groups=2) act }
  residual { conv(6, 3, stride=2, pad=1, bias=false) bn(momentum=0.9) }
  act@mid
  maxpool(3, stride=2, pad=same)
  avgpool(3, stride=1, pad=1)
  flatten dropout(0.5)
  linear(5) bn(momentum=0.9) act@fc
  linear(classes, bias=false)
  dropout(0)
}";

fn every_layer_net() -> Network {
    compile(EVERY_LAYER, &[])
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0)
}

/// Standard normal inputs from the seeded generator (candle's own `randn`
/// cannot be seeded, so a test drawing from it would see other inputs on
/// every run).
fn randn(dims: (usize, usize, usize, usize)) -> Result<Tensor> {
    use rand_distr::{Distribution, StandardNormal};
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let values: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut r)).collect();
    Ok(Tensor::from_vec(values, dims, &Device::Cpu)?)
}

fn build(net: &Network, bindings: &[&str], seed: u64, dtype: DType) -> Result<Model> {
    let reg = Registry::builtin()?;
    Model::build_with_dtype(
        net,
        &reg,
        &ActBindings::parse(bindings)?,
        &Device::Cpu,
        Seed(seed),
        dtype,
    )
}

/// [`build`] in f32 with the CPU path on or off.
fn build_path(net: &Network, bindings: &[&str], cpu: bool) -> Result<Model> {
    let mut m = build(net, bindings, 0, DType::F32)?;
    m.set_cpu_path(cpu);
    assert_eq!(m.uses_cpu_path(), cpu);
    Ok(m)
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
}

#[test]
fn builds_every_layer_type_and_runs_forward_backward() -> Result<()> {
    let net = every_layer_net();
    let mut model = build(&net, &["arelu", "fc=prelu:p=0.1"], 0, DType::F32)?;
    let counted: usize = model
        .params()
        .iter()
        .filter(|p| !matches!(p.kind, ParamKind::Activation(_)))
        .map(|p| p.var.elem_count())
        .sum();
    assert_eq!(counted, net.param_count());
    assert!(model.params().iter().any(|p| p.name == "residual0.act0.a"));
    assert!(model.params().iter().any(|p| p.name == "act1.p"));
    let x = randn((3, 2, 6, 6))?;
    let y = model.forward_train(&x, &mut rng())?;
    assert_eq!(y.dims(), [3, 3]);
    let grads = y.sqr()?.sum_all()?.backward()?;
    for p in model.params() {
        assert!(
            grads.get(p.var.as_tensor()).is_some(),
            "no gradient for {}",
            p.name
        );
    }
    let e = model.forward_eval(&x)?;
    assert_eq!(e.dims(), [3, 3]);
    let vals = model.act_values()?;
    let names: Vec<(&str, &str)> = vals
        .iter()
        .map(|v| (v.path.as_str(), v.activation.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("act0", "arelu"),
            ("residual0.act0", "arelu"),
            ("dense0.layer0.act0", "arelu"),
            ("dense0.layer1.act0", "arelu"),
            ("act1", "prelu")
        ]
    );
    assert_eq!(vals[4].params, [("p".to_owned(), vec![0.1f32])]);
    assert_eq!(vals[4].slot.as_deref(), Some("fc"));
    let names: Vec<&str> = model.buffers().iter().map(|b| b.0.as_str()).collect();
    assert_eq!(names[..2], ["bn0.running_mean", "bn0.running_var"]);
    assert_eq!(names.len(), 2 * 4);
    Ok(())
}

#[test]
fn whole_model_gradients_match_finite_differences() -> Result<()> {
    // Dropout is random, so make it the identity (rate 0) here.
    let net = compile(EVERY_LAYER, &[("drop", "0")]);
    let mut model = build(
        &net,
        &["atanh:a=1.1,b=0.9,c=0.1,d=-0.1", "fc=swish:beta=1.3"],
        3,
        DType::F64,
    )?;
    let x = crate::ops::gradcheck::rand(&[2, 2, 6, 6], -1.0, 1.0, 7);
    let w = crate::ops::gradcheck::rand(&[2, 3], -1.0, 1.0, 8);
    let loss = |m: &mut Model| -> Result<f64> {
        Ok(m.forward_train(&x, &mut rng())?
            .mul(&w)?
            .sum_all()?
            .to_scalar::<f64>()?)
    };
    let grads = model
        .forward_train(&x, &mut rng())?
        .mul(&w)?
        .sum_all()?
        .backward()?;
    let eps = 1e-6;
    for p in model.params().to_vec() {
        let base: Vec<f64> = p.var.as_tensor().flatten_all()?.to_vec1()?;
        let analytic: Vec<f64> = match grads.get(p.var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1()?,
            None => panic!("no gradient for {}", p.name),
        };
        // A few elements per tensor keep the test fast.
        for i in (0..base.len()).step_by(base.len().div_ceil(4)) {
            let mut at = |d: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += d;
                p.var
                    .set(&Tensor::from_vec(v, p.var.shape(), &Device::Cpu)?)?;
                loss(&mut model)
            };
            let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
            p.var.set(&Tensor::from_vec(
                base.clone(),
                p.var.shape(),
                &Device::Cpu,
            )?)?;
            let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
            assert!(
                err < 1e-5,
                "{}[{i}]: analytic {} numeric {numeric}",
                p.name,
                analytic[i]
            );
        }
    }
    Ok(())
}

#[test]
fn same_seed_same_weights() -> Result<()> {
    let net = every_layer_net();
    let bits = |m: &Model| -> Result<Vec<Vec<u32>>> {
        m.params()
            .iter()
            .map(|p| {
                Ok(flat(p.var.as_tensor())?
                    .iter()
                    .map(|v| v.to_bits())
                    .collect())
            })
            .collect()
    };
    let a = bits(&build(&net, &["relu"], 42, DType::F32)?)?;
    let b = bits(&build(&net, &["relu"], 42, DType::F32)?)?;
    let c = bits(&build(&net, &["relu"], 43, DType::F32)?)?;
    assert_eq!(a, b);
    assert_ne!(a, c);
    // PyTorch's bound: conv0 has fan_in 2*3*3 = 18.
    let m = build(&net, &["relu"], 42, DType::F32)?;
    let w = flat(m.params()[0].var.as_tensor())?;
    let bound = 1.0 / 18f32.sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > bound * 0.8));
    Ok(())
}

#[test]
fn layer_forwards_by_hand() -> Result<()> {
    let dev = Device::Cpu;
    for cpu in [true, false] {
        // Linear with known weights: y = W x + b.
        let m = build_path(
            &compile("network t { input 2 linear(1) }", &[]),
            &["relu"],
            cpu,
        )?;
        m.params()[0].var.set(&Tensor::new(&[[2f32, -1.]], &dev)?)?;
        m.params()[1].var.set(&Tensor::new(&[0.5f32], &dev)?)?;
        let y = m.forward_eval(&Tensor::new(&[[3f32, 4.]], &dev)?)?;
        assert_eq!(y.to_vec2::<f32>()?, [[2.5]]);
        // Global average pool and flatten.
        let m = build_path(
            &compile("network t { input 2x2x2 gap }", &[]),
            &["relu"],
            cpu,
        )?;
        let x =
            Tensor::new(&[1f32, 2., 3., 4., 10., 20., 30., 40.], &dev)?.reshape((1, 2, 2, 2))?;
        assert_eq!(m.forward_eval(&x)?.to_vec2::<f32>()?, [[2.5, 25.0]]);
        let m = build_path(
            &compile("network t { input 2x2x2 flatten }", &[]),
            &["relu"],
            cpu,
        )?;
        assert_eq!(m.forward_eval(&x)?.dims(), [1, 8]);
        // Residual with identity shortcut around an act: relu(x) + x.
        let m = build_path(
            &compile("network t { input 1x1x2 residual { act } }", &[]),
            &["relu"],
            cpu,
        )?;
        let x = Tensor::new(&[-1f32, 2.], &dev)?.reshape((1, 1, 1, 2))?;
        assert_eq!(flat(&m.forward_eval(&x)?)?, [-1.0, 4.0]);
        // Concat and dense of acts: [relu(x), tanh(x)] and [x, relu(x)].
        let m = build_path(
            &compile(
                "network t { input 1x1x2 concat { branch { act } branch { act@t } } }",
                &[],
            ),
            &["relu", "t=tanh"],
            cpu,
        )?;
        let y = flat(&m.forward_eval(&x)?)?;
        assert_eq!(y[..2], [0.0, 2.0]);
        assert!((y[2] - (-1f32).tanh()).abs() < 1e-6 && (y[3] - 2f32.tanh()).abs() < 1e-6);
        let m = build_path(
            &compile("network t { input 1x1x2 dense 1 { act } }", &[]),
            &["relu"],
            cpu,
        )?;
        assert_eq!(flat(&m.forward_eval(&x)?)?, [-1.0, 2.0, 0.0, 2.0]);
    }
    Ok(())
}

#[test]
fn batch_norm_running_statistics() -> Result<()> {
    let dev = Device::Cpu;
    let mut net = compile("network t { input 1 bn(momentum=0.9) }", &[]);
    // The language wants a positive epsilon; 0 makes the numbers exact.
    if let Op::BatchNorm { eps, .. } = &mut net.body[0].op {
        *eps = 0.0;
    }
    let mut m = build(&net, &["relu"], 0, DType::F64)?;
    let x = Tensor::new(&[[1f64], [3.]], &dev)?;
    let y = m.forward_train(&x, &mut rng())?;
    assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [-1.0, 1.0]);
    // running_mean = 0.9*0 + 0.1*2; running_var = 0.9*1 + 0.1*(unbiased 2).
    let stat = |m: &Model, i: usize| -> Result<f64> {
        Ok(m.buffers()[i]
            .1
            .as_tensor()
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?[0])
    };
    assert!((stat(&m, 0)? - 0.2).abs() < 1e-12);
    assert!((stat(&m, 1)? - 1.1).abs() < 1e-12);
    let e = m.forward_eval(&Tensor::new(&[[1.2f64]], &dev)?)?;
    assert!((e.flatten_all()?.to_vec1::<f64>()?[0] - 1.0 / 1.1f64.sqrt()).abs() < 1e-12);
    Ok(())
}

#[test]
fn dropout_is_inverted_seeded_and_off_in_eval() -> Result<()> {
    let net = compile("network t { input 1000 dropout(0.25) }", &[]);
    let mut m = build(&net, &["relu"], 0, DType::F32)?;
    let x = Tensor::ones((1, 1000), DType::F32, &Device::Cpu)?;
    let a = flat(&m.forward_train(&x, &mut rng())?)?;
    let b = flat(&m.forward_train(&x, &mut rng())?)?;
    assert_eq!(a, b);
    assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    let dropped = a.iter().filter(|&&v| v == 0.0).count();
    assert!((200..300).contains(&dropped), "{dropped} dropped");
    let e = flat(&m.forward_eval(&x)?)?;
    assert!(e.iter().all(|&v| v == 1.0));
    Ok(())
}

#[test]
fn binding_errors() -> Result<()> {
    let net = every_layer_net();
    let reg = Registry::builtin()?;
    let err = |specs: &[&str]| -> String {
        match ActBindings::parse(specs)
            .and_then(|b| Model::build(&net, &reg, &b, &Device::Cpu, Seed(0)))
        {
            Ok(_) => panic!("{specs:?} built"),
            Err(e) => e.to_string(),
        }
    };
    assert!(
        err(&["relu", "conv=relu"]).contains("unknown slot `conv`; the network's slots are fc")
    );
    assert!(err(&["lrelu:q=1"]).contains("`lrelu` has no parameter `q`; valid: s"));
    assert!(err(&["nope"]).contains("unknown activation `nope`"));
    assert!(err(&["fc=relu"]).contains("no activation for `act0`"));
    let mut bad = every_layer_net();
    bad.body[0].input = Shape::Image { c: 3, h: 6, w: 6 };
    match build(&bad, &["relu", "fc=relu"], 0, DType::F32) {
        Err(Error::Config(m)) => assert!(
            m.starts_with("conv0: convolution expects 2 channels"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let x = Tensor::zeros((1, 3, 6, 6), DType::F32, &Device::Cpu)?;
    let m = build(&net, &["relu"], 0, DType::F32)?;
    assert!(matches!(m.forward_eval(&x), Err(Error::DataMismatch(_))));
    Ok(())
}

/// Largest `|a - b|` relative to `1 + max |b|` (f32 sums in another order).
fn close(a: &Tensor, b: &Tensor) -> Result<f32> {
    let (a, b) = (flat(a)?, flat(b)?);
    assert_eq!(a.len(), b.len());
    let scale = 1.0 + b.iter().fold(0f32, |m, v| m.max(v.abs()));
    Ok(a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale)
}

/// The CPU path against candle's autograd on the same weights and batch:
/// loss, hits, every parameter's gradient, the batch-norm running
/// statistics and eval logits. Dropout draws from the same seed on both
/// sides, so this also holds the order of the draws.
fn cpu_path_matches_autograd(
    what: &str,
    net: &Network,
    bindings: &[&str],
    batch: usize,
    tol: f32,
) -> Result<()> {
    let mut fast = build(net, bindings, 5, DType::F32)?;
    let mut slow = build(net, bindings, 5, DType::F32)?;
    slow.set_cpu_path(false);
    assert!(fast.uses_cpu_path() && !slow.uses_cpu_path());
    let Shape::Image { c, h, w } = net.input else {
        panic!("image input")
    };
    let Shape::Flat(classes) = net.output else {
        panic!("flat output")
    };
    let x = randn((batch, c, h, w))?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
    let y = Tensor::from_vec(labels, batch, &Device::Cpu)?;
    // A step borrows its model while its gradients live.
    let (fast_params, slow_params) = (fast.params().to_vec(), slow.params().to_vec());
    let sf = fast.train_step(&x, &y, &mut rng())?;
    let ss = slow.train_step(&x, &y, &mut rng())?;
    let (lf, ls) = (sf.loss, ss.loss);
    assert!(
        (lf - ls).abs() < tol * (1.0 + ls.abs()),
        "{what}: loss {lf} vs {ls}"
    );
    assert_eq!(sf.correct, ss.correct, "{what}: hits");
    let (gf, gs) = (sf.grads().expect("finite"), ss.grads().expect("finite"));
    for (pf, ps) in fast_params.iter().zip(&slow_params) {
        let a = gf.get(pf.var.as_tensor()).expect("cpu path gradient");
        let b = gs.get(ps.var.as_tensor()).expect("autograd gradient");
        let err = close(a, b)?;
        assert!(err < tol, "{what}: {}: gradient differs by {err}", pf.name);
    }
    for ((name, a), (_, b)) in fast.buffers().iter().zip(slow.buffers()) {
        let err = close(a.as_tensor(), b.as_tensor())?;
        assert!(err < tol, "{what}: {name} differs by {err}");
    }
    let ef = fast.forward_eval(&x)?;
    let es = slow.forward_eval(&x)?;
    let err = close(&ef, &es)?;
    assert!(err < tol, "{what}: eval logits differ by {err}");
    Ok(())
}

#[test]
fn cpu_path_matches_candle_autograd() -> Result<()> {
    let net = compile(RESIDUAL_NET, &[]);
    // Fused kernels (arelu, relu), and a formula-only per-channel
    // activation (the local-graph fallback).
    cpu_path_matches_autograd(
        "res",
        &net,
        &["arelu", "mid=relu", "fc=prelu_channel"],
        5,
        1e-4,
    )?;
    cpu_path_matches_autograd("res", &net, &["swish", "mid=atanh", "fc=pelu"], 3, 1e-4)?;
    // One image: the kernels' single-image split.
    cpu_path_matches_autograd("res", &net, &["relu"], 1, 1e-4)?;
    // LRN, concat (with an identity branch), dense blocks, global pooling.
    let net = every_layer_net();
    cpu_path_matches_autograd("every", &net, &["arelu", "fc=prelu_channel"], 4, 1e-4)?;
    cpu_path_matches_autograd("every", &net, &["tanh", "fc=relu"], 1, 1e-4)
}

/// Every shipped model, at a size that keeps the test quick (the widths
/// the files fix, smaller inputs, fully connected layers or block counts
/// where the file takes them as arguments), through both paths. The
/// ResNets get a looser tolerance: through 50 layers of batch norm over
/// three images, both f32 paths are ~1e-2 from an f64 run, and a
/// parameter summed over every cell (an activation's `c`) then differs by
/// ~1e-3 between them while every weight agrees to ~1e-6.
#[test]
fn shipped_models_match_autograd_on_the_cpu_path() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/models");
    let cases: [(&str, &[(&str, &str)]); 10] = [
        ("convnet", &[("size", "12")]),
        ("alexnet", &[]),
        ("vgg", &[("size", "8"), ("fc1", "32"), ("fc2", "32")]),
        ("vgg-v", &[("size", "8"), ("fc", "32")]),
        ("vgg-small", &[("size", "16")]),
        ("googlenet", &[("size", "16")]),
        ("resnet", &[("size", "16")]),
        ("resnet20", &[("size", "8")]),
        ("resnet50", &[("size", "16")]),
        (
            "densenet",
            &[
                ("size", "16"),
                ("k", "4"),
                ("n1", "2"),
                ("n2", "2"),
                ("n3", "3"),
                ("n4", "2"),
            ],
        ),
    ];
    for (name, args) in cases {
        let src = std::fs::read_to_string(dir.join(format!("{name}.acnet")))
            .map_err(|e| Error::Config(format!("{name}: {e}")))?;
        let net = compile(&src, args);
        let start = std::time::Instant::now();
        let fc_slot = net
            .act_sites()
            .iter()
            .any(|n| matches!(&n.op, Op::Act { slot: Some(s) } if s == "fc"));
        let bindings: &[&str] = if fc_slot {
            &["arelu", "fc=relu"]
        } else {
            &["arelu"]
        };
        let tol = if name.starts_with("resnet") {
            5e-3
        } else {
            1e-3
        };
        cpu_path_matches_autograd(name, &net, bindings, 3, tol)?;
        eprintln!("{name}: {:.2} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

#[test]
fn cpu_path_runs_where_it_applies() -> Result<()> {
    for net in [every_layer_net(), compile(RESIDUAL_NET, &[])] {
        assert!(build(&net, &["relu"], 0, DType::F32)?.uses_cpu_path());
        assert!(!build(&net, &["relu"], 0, DType::F64)?.uses_cpu_path());
        let mut m = build(&net, &["relu"], 0, DType::F32)?;
        m.set_cpu_path(false);
        assert!(!m.uses_cpu_path());
    }
    Ok(())
}

/// Every shipped model file builds, on the CPU path, and its
/// non-activation parameters match the IR's count; a forward/backward pass
/// runs on the quick ones (the others take seconds each; their layer kinds
/// are covered by the tests above).
#[test]
fn shipped_models_build_and_run() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/models");
    let reg = Registry::builtin()?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| Error::Config(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "acnet"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no models in {}", dir.display());
    for file in files {
        let net = match acbench_dsl::compile_file(&file, None, &[]) {
            Ok(n) => n,
            Err(e) => panic!("{}: {e:?}", file.display()),
        };
        let mut model = Model::build(
            &net,
            &reg,
            &ActBindings::uniform("arelu"),
            &Device::Cpu,
            Seed(0),
        )?;
        assert!(model.uses_cpu_path(), "{}", file.display());
        let weights: usize = model
            .params()
            .iter()
            .filter(|p| !matches!(p.kind, ParamKind::Activation(_)))
            .map(|p| p.var.elem_count())
            .sum();
        assert_eq!(weights, net.param_count(), "{}", file.display());
        assert_eq!(model.act_values()?.len(), net.act_sites().len());
        let quick = ["convnet", "alexnet", "googlenet"];
        if !file
            .file_stem()
            .is_some_and(|s| quick.iter().any(|q| s == *q))
        {
            continue;
        }
        let Shape::Image { c, h, w } = net.input else {
            continue;
        };
        let x = randn((1, c, h, w))?;
        let y = model.forward_eval(&x)?;
        assert_eq!(y.dims(), [1, net.output.numel()], "{}", file.display());
        let labels = Tensor::new(&[0u32], &Device::Cpu)?;
        let step = model.train_step(&x, &labels, &mut rng())?;
        assert!(
            step.loss.is_finite() && step.grads().is_some(),
            "{}",
            file.display()
        );
    }
    Ok(())
}
