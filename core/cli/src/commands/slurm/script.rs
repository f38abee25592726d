//! The sbatch scripts of `acbench suite --slurm`: text only, no I/O.

use std::fmt::Write as _;
use std::path::Path;

/// One word of a command line in a script: a literal, quoted for the
/// shell, or shell text written as it is (a variable expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Quoted in single quotes.
    Literal(String),
    /// Written as is.
    Shell(String),
}

impl Word {
    /// A literal path.
    pub fn path(p: &Path) -> Self {
        Word::Literal(p.display().to_string())
    }

    fn render(&self) -> String {
        match self {
            Word::Literal(s) => quote(s),
            Word::Shell(s) => s.clone(),
        }
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        Word::Literal(s.to_owned())
    }
}

/// `s` in single quotes for a POSIX shell (a quote inside as `'\''`); plain
/// words that need no quoting are left bare, for readable scripts.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `#SBATCH` settings both scripts share.
#[derive(Debug, Clone, Default)]
pub struct Common<'a> {
    /// `--job-name`.
    pub name: String,
    /// `--partition`.
    pub partition: Option<&'a str>,
    /// Extra sbatch options, one line each.
    pub extra: &'a [String],
}

/// The job array of shards.
#[derive(Debug, Clone)]
pub struct ShardScript<'a> {
    /// Shared settings.
    pub common: Common<'a>,
    /// Array tasks (`--array=0-(N-1)`).
    pub shards: usize,
    /// `%K`: at most this many running at once.
    pub parallel: Option<usize>,
    /// `--time`.
    pub time: Option<&'a str>,
    /// `--gres`.
    pub gres: Option<&'a str>,
    /// Seconds before the time limit for SIGUSR1.
    pub signal_before: u64,
    /// Folder of the jobs' output files.
    pub logs: &'a Path,
    /// The command each task runs (`exec`ed).
    pub command: Vec<Word>,
}

impl ShardScript<'_> {
    /// The script's text.
    pub fn render(&self) -> String {
        let mut s = header(
            "One shard of the plan per array task; each runs its runs into a ledger file of its own.",
        );
        let mut array = format!("0-{}", self.shards.saturating_sub(1));
        if let Some(k) = self.parallel {
            let _ = write!(array, "%{k}");
        }
        sbatch(&mut s, "job-name", &self.common.name);
        sbatch(&mut s, "array", &array);
        sbatch(
            &mut s,
            "output",
            &self.logs.join("shard-%A_%a.out").display().to_string(),
        );
        // A requeued task appends to its output instead of truncating it.
        sbatch(&mut s, "open-mode", "append");
        sbatch(&mut s, "requeue", "");
        // USR1 to the batch shell, which is acbench itself (exec below).
        sbatch(&mut s, "signal", &format!("B:USR1@{}", self.signal_before));
        option(&mut s, "partition", self.common.partition);
        option(&mut s, "time", self.time);
        option(&mut s, "gres", self.gres);
        extra(&mut s, self.common.extra);
        s.push_str(
            "\n# The threads of tensor operations follow --cpus-per-task when it is given.\n\
             if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export RAYON_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\"; fi\n\
             # exec: acbench receives Slurm's signals itself, stops cleanly and requeues the task.\n",
        );
        command(&mut s, "exec ", &self.command);
        s
    }
}

/// The job that merges the shards' ledgers and writes the report.
#[derive(Debug, Clone)]
pub struct MergeScript<'a> {
    /// Shared settings.
    pub common: Common<'a>,
    /// Folder of the job's output file.
    pub logs: &'a Path,
    /// `acbench merge OUT`.
    pub merge: Vec<Word>,
    /// `acbench report OUT`.
    pub report: Vec<Word>,
}

impl MergeScript<'_> {
    /// The script's text. Its one argument is the array's job id.
    pub fn render(&self) -> String {
        let mut s = header(
            "Runs after every shard has ended: sbatch --dependency=afterany:ARRAY this-script ARRAY.",
        );
        sbatch(&mut s, "job-name", &self.common.name);
        sbatch(
            &mut s,
            "output",
            &self.logs.join("merge-%j.out").display().to_string(),
        );
        option(&mut s, "partition", self.common.partition);
        extra(&mut s, self.common.extra);
        s.push_str(concat!(
            "\nset -e\n",
            "array=${1:?usage: sbatch --dependency=afterany:ARRAY_ID this-script ARRAY_ID}\n",
            "# A task that requeues itself can release this job early (Slurm counts the\n",
            "# requeue as the task's end), so wait until no task of the array is queued.\n",
            "while [ -n \"$(squeue --noheader --array --jobs=\"$array\" --format=%i 2>/dev/null)\" ]; do\n",
            "    sleep 10\n",
            "done\n",
        ));
        command(&mut s, "", &self.merge);
        command(&mut s, "exec ", &self.report);
        s
    }
}

fn header(what: &str) -> String {
    format!("#!/bin/bash\n# Written by `acbench suite --slurm`. {what}\n")
}

fn sbatch(s: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        let _ = writeln!(s, "#SBATCH --{key}");
    } else {
        let _ = writeln!(s, "#SBATCH --{key}={value}");
    }
}

fn option(s: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        sbatch(s, key, v);
    }
}

/// sbatch reads `#SBATCH` lines up to the first command, one option per
/// line, without the shell's quoting.
fn extra(s: &mut String, args: &[String]) {
    for a in args {
        let _ = writeln!(s, "#SBATCH {a}");
    }
}

fn command(s: &mut String, prefix: &str, words: &[Word]) {
    let words: Vec<String> = words.iter().map(Word::render).collect();
    let _ = writeln!(s, "{prefix}{}", words.join(" "));
}

#[cfg(test)]
mod tests;
