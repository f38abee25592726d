//! `report.html` in a real browser: Debian's `chromium`, headless, loads a
//! small report and checks it in the page (`chromium/harness.js`): no script
//! error, console error or blocked load; every plot's `<svg>` laid out with
//! a size and its text drawn; clicking a header sorts the rows by that
//! column and clicking again reverses them, empty cells last; every
//! in-page link has its target; best cells are bold. It also takes
//! screenshots of the first screen and the whole page (kept in
//! `$ACBENCH_CHROMIUM_OUT` when set, to look at).
//!
//! Ignored by default: it needs `chromium` (`apt-get install chromium`;
//! `$CHROMIUM` names another binary). CI installs it and runs
//! `cargo test -p acbench-reports --test chromium -- --ignored`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acbench_reports::{
    EpochPoint, LayerIncrements, ReportSpec, RunResult, RunStatus, SlotParams, plot, render_report,
};

/// A run of `epochs` epochs whose loss falls and whose final accuracy is
/// `acc`; adaptive runs carry two act slots with learned parameters.
fn run(model: &str, activation: &str, seed: u64, acc: Option<f64>) -> RunResult {
    let s = seed as f64 * 0.02;
    let shift = match activation {
        "arelu" => -0.2,
        "sigmoid" => 0.4,
        "asigmoid" => 0.2,
        _ => 0.0,
    };
    let epochs = (0..6)
        .map(|e| EpochPoint {
            epoch: e,
            train_loss: 2.0 / (e as f64 + 1.0) + s + shift,
            test_loss: 2.1 / (e as f64 + 1.0) + s,
            test_acc: if e == 5 {
                acc.unwrap_or(f64::NAN)
            } else {
                0.1 * e as f64
            },
            wall_s: 1.0,
        })
        .collect();
    let formula = match activation {
        "arelu" => Some("max(a * x + c, b * x + d)"),
        "asigmoid" => Some("b * sigmoid(a * x + c) + d"),
        _ => None,
    };
    let final_act_params = formula
        .map(|f| {
            ["features.act0", "classifier.act1"]
                .iter()
                .enumerate()
                .map(|(i, path)| SlotParams {
                    path: (*path).to_owned(),
                    activation: activation.to_owned(),
                    formula: Some(f.to_owned()),
                    params: vec![
                        ("a".to_owned(), vec![0.4 + i as f64 * 0.2 + s]),
                        ("b".to_owned(), vec![1.1, 1.3]),
                        ("c".to_owned(), vec![0.0]),
                        ("d".to_owned(), vec![0.05]),
                    ],
                })
                .collect()
        })
        .unwrap_or_default();
    RunResult {
        model: model.to_owned(),
        activation: activation.to_owned(),
        optimizer: "sgd".to_owned(),
        dataset: "cifar10".to_owned(),
        seed,
        status: if acc.is_some() {
            RunStatus::Finished
        } else {
            RunStatus::Diverged
        },
        epochs,
        final_act_params,
        weight_increments: ["conv0", "fc1"]
            .iter()
            .map(|l| LayerIncrements {
                layer: (*l).to_owned(),
                per_epoch: (0..6)
                    .map(|e| (0.5 + shift) / (e as f64 + 1.0) + s + l.len() as f64 * 0.02)
                    .collect(),
            })
            .collect(),
        step_losses: if acc.is_some() {
            (1..=30)
                .map(|k| (k * 10, (1.2 + shift) / (1.0 + k as f64 / 5.0) + s))
                .collect()
        } else {
            Vec::new()
        },
        detector: None,
        detection: Vec::new(),
        pr_curve: Vec::new(),
    }
}

/// Two models, four activations, three seeds, one run diverged.
fn runs() -> Vec<RunResult> {
    let mut out = Vec::new();
    for (model, base) in [("alexnet", 0.80), ("vgg", 0.86)] {
        for (act, gain) in [
            ("relu", 0.0),
            ("arelu", 0.03),
            ("sigmoid", -0.2),
            ("asigmoid", -0.1),
        ] {
            for seed in 0..3 {
                let acc = base + gain + seed as f64 * 0.004;
                let diverged = model == "vgg" && act == "sigmoid" && seed == 2;
                out.push(run(model, act, seed, (!diverged).then_some(acc)));
            }
        }
    }
    out
}

/// Runs in the page before the report's own script: records errors, then
/// checks the page once it has loaded and appends PASS or FAIL with the
/// reasons in `<pre id="acbench-check">`.
const HARNESS: &str = include_str!("chromium/harness.js");

/// The browser to drive.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// Runs headless chromium with `args` (a fresh profile in `dir`); returns
/// stdout and stderr. Panics after a minute.
fn headless(dir: &Path, name: &str, args: &[String]) -> (String, String) {
    let profile = dir.join(format!("profile-{name}"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            // Root in a container has no user namespace sandbox to enter;
            // the page is our own local file.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): apt-get install chromium",
                chromium()
            )
        });
    let mut pipes = (child.stdout.take(), child.stderr.take());
    let read = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = p {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(pipes.0.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = read(pipes.1.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {name} did not finish within a minute");
            }
        }
    }
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (out, err)
}

/// Messages the page wrote to its console, from chromium's log.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
#[ignore = "needs Debian's chromium (apt-get install chromium)"]
fn report_html_in_headless_chromium() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let runs = runs();
    let spec = ReportSpec {
        title: "Chromium check <suite> & co".into(),
        paper_table: Some("table1".into()),
        deviations: vec!["6 epochs instead of the paper's 150".into()],
        ..ReportSpec::default()
    };
    render_report(&runs, &spec, Some(&out)).expect("report");
    let plots = plot::plots(&runs).expect("plots").len();
    assert!(plots >= 8, "{plots} plots");
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html");

    // The page as written: loads without a console message.
    let (dom, stderr) = headless(tmp.path(), "plain", &["--dump-dom".into(), url(&page)]);
    assert!(
        dom.contains("<table class=\"sortable grid\">"),
        "no page: {stderr}"
    );
    assert_eq!(console_lines(&stderr), Vec::<&str>::new(), "{stderr}");

    // With the harness before the page's own script.
    let harness = HARNESS.replace("__PLOTS__", &plots.to_string());
    let checked = html.replacen(
        "</head>",
        &format!("<script>\n{harness}</script>\n</head>"),
        1,
    );
    let check_page = out.join("check.html");
    std::fs::write(&check_page, checked).expect("check.html");
    let (dom, stderr) = headless(
        tmp.path(),
        "check",
        &["--dump-dom".into(), url(&check_page)],
    );
    let verdict = dom
        .split("<pre id=\"acbench-check\">")
        .nth(1)
        .and_then(|s| s.split("END-CHECK").next())
        .unwrap_or_else(|| panic!("the harness did not run:\n{stderr}"));
    assert_eq!(verdict.trim(), "PASS", "{verdict}");
    assert_eq!(console_lines(&stderr), Vec::<&str>::new(), "{stderr}");

    // Screenshots to look at: the first screen, and the whole page.
    let shots: PathBuf = std::env::var_os("ACBENCH_CHROMIUM_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("shots"));
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    // `checked` is the page after the harness: sorted by its last click,
    // a claim opened.
    for (name, size, file) in [
        ("top", "1280,2000", &page),
        ("full", "1280,12000", &page),
        ("checked", "1280,3000", &check_page),
    ] {
        let png = shots.join(format!("report-{name}.png"));
        let (_, stderr) = headless(
            tmp.path(),
            name,
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={size}"),
                url(file),
            ],
        );
        let bytes =
            std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{}",
            png.display()
        );
    }
}
