//! Soak: 500 short runs through one suite process, watched through
//! `$ACBENCH_RESOURCE_LOG`: resident memory after run 500 within 10% of
//! after run 50, no file descriptor or thread leaked. `#[ignore]`d (about
//! two minutes); `scripts/soak.sh` runs it.

mod common;

use common::{acbench, fashion_dir, model};

/// `(runs, rss_kb, fds, threads)` per logged line.
fn read_log(path: &std::path::Path) -> Vec<(usize, u64, u64, u64)> {
    let text = std::fs::read_to_string(path).expect("resource log");
    text.lines()
        .map(|l| {
            let field = |k: &str| -> u64 {
                l.split_whitespace()
                    .find_map(|p| p.strip_prefix(k))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{k} in {l}"))
            };
            (
                field("runs=") as usize,
                field("rss_kb="),
                field("fds="),
                field("threads="),
            )
        })
        .collect()
}

#[test]
#[ignore = "about two minutes: scripts/soak.sh"]
fn five_hundred_runs_in_one_process_keep_memory_descriptors_and_threads_flat() {
    let runs: usize = std::env::var("ACBENCH_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let data = fashion_dir(32, 16);
    let dir = tempfile::tempdir().expect("tempdir");
    let seeds: Vec<String> = (0..runs).map(|s| s.to_string()).collect();
    let suite = dir.path().join("soak.yaml");
    std::fs::write(
        &suite,
        format!(
            "name: soak\ndataset: {{name: fashion-mnist, limit_train: 32, limit_test: 16}}\n\
             models: [{}]\nactivations: [arelu]\nlr: 0.05\nepochs: 1\nbatch_size: 16\n\
             seeds: [{}]\n",
            model("convnet.acnet").display(),
            seeds.join(", ")
        ),
    )
    .expect("suite");
    let log = dir.path().join("resources.log");
    acbench()
        .env("ACBENCH_RESOURCE_LOG", &log)
        .arg("suite")
        .arg(&suite)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--no-plots")
        .timeout(std::time::Duration::from_secs(1800))
        .assert()
        .success();
    let lines = read_log(&log);
    assert_eq!(lines.len(), runs, "a line per run");
    let at = |n: usize| lines.iter().find(|l| l.0 == n).copied().expect("logged");
    let early = at(runs.min(50));
    let last = at(runs);
    let growth = last.1 as f64 / early.1 as f64 - 1.0;
    println!(
        "after run {}: {} KiB, {} fds, {} threads; after run {runs}: {} KiB ({:+.1}%), {} fds, {} threads",
        early.0,
        early.1,
        early.2,
        early.3,
        last.1,
        100.0 * growth,
        last.2,
        last.3
    );
    assert!(
        growth <= 0.10,
        "resident memory grew {:.1}%",
        100.0 * growth
    );
    assert!(
        last.2 <= early.2,
        "file descriptors leaked: {} -> {}",
        early.2,
        last.2
    );
    assert!(
        last.3 <= early.3,
        "threads leaked: {} -> {}",
        early.3,
        last.3
    );
}
