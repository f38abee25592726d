use std::path::PathBuf;

use super::*;

#[test]
fn words_are_quoted_only_where_the_shell_needs_it() {
    assert_eq!(quote("/srv/out-1/plan.json"), "/srv/out-1/plan.json");
    assert_eq!(quote("epochs=2"), "epochs=2");
    assert_eq!(quote("a b"), "'a b'");
    assert_eq!(quote("it's"), r"'it'\''s'");
    assert_eq!(quote(""), "''");
    assert_eq!(quote("$HOME"), "'$HOME'");
}

#[test]
fn the_shard_script_asks_for_the_signal_and_execs_acbench() {
    let logs = PathBuf::from("/srv/out/slurm/logs");
    let extra = ["--mem=8G".to_owned(), "--account=lab x".to_owned()];
    let script = ShardScript {
        common: Common {
            name: "acbench-cifar".into(),
            partition: Some("gpu"),
            extra: &extra,
        },
        shards: 4,
        parallel: Some(2),
        time: Some("4:00:00"),
        gres: Some("gpu:1"),
        signal_before: 300,
        logs: &logs,
        command: vec![
            Word::path(Path::new("/opt/acbench")),
            "suite".into(),
            Word::Shell("\"${SLURM_ARRAY_TASK_ID}/4\"".into()),
            "--set".into(),
            "name=my suite".into(),
        ],
    };
    let text = script.render();
    for line in [
        "#!/bin/bash\n",
        "#SBATCH --job-name=acbench-cifar\n",
        "#SBATCH --array=0-3%2\n",
        "#SBATCH --output=/srv/out/slurm/logs/shard-%A_%a.out\n",
        "#SBATCH --open-mode=append\n",
        "#SBATCH --requeue\n",
        "#SBATCH --signal=B:USR1@300\n",
        "#SBATCH --partition=gpu\n",
        "#SBATCH --time=4:00:00\n",
        "#SBATCH --gres=gpu:1\n",
        "#SBATCH --mem=8G\n",
        "#SBATCH --account=lab x\n",
        "exec /opt/acbench suite \"${SLURM_ARRAY_TASK_ID}/4\" --set 'name=my suite'\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    // Every #SBATCH line comes before the first command.
    let first_command = text.find("\nif ").expect("command");
    assert!(text.rfind("#SBATCH").expect("sbatch") < first_command);
}

#[test]
fn the_merge_script_merges_then_reports() {
    let logs = PathBuf::from("/srv/out/slurm/logs");
    let text = MergeScript {
        common: Common {
            name: "acbench-cifar-merge".into(),
            partition: None,
            extra: &[],
        },
        logs: &logs,
        merge: vec!["/opt/acbench".into(), "merge".into(), "/srv/out".into()],
        report: vec!["/opt/acbench".into(), "report".into(), "/srv/out".into()],
    }
    .render();
    assert!(text.contains("#SBATCH --output=/srv/out/slurm/logs/merge-%j.out\n"));
    assert!(!text.contains("--partition"));
    let merge = text.find("/opt/acbench merge /srv/out\n").expect("merge");
    let report = text
        .find("exec /opt/acbench report /srv/out\n")
        .expect("report");
    assert!(text.contains("set -e\n") && merge < report, "{text}");
    let wait = text
        .find("while [ -n \"$(squeue")
        .expect("waits for requeued tasks");
    assert!(wait < merge, "{text}");
}
