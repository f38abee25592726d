//! Progress display: indicatif bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;

use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::RunSpec;
use acbench_suite::runner::{BatchObserver, Outcome, RunObserver, Summary};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows training progress: a bar per epoch on a terminal; on a pipe or a
/// file only one line per finished epoch, so logs stay readable.
pub struct TrainProgress {
    bar: Option<ProgressBar>,
    interactive: bool,
    epochs: usize,
    /// Set when the bars live under a suite's bar.
    multi: Option<MultiProgress>,
}

impl TrainProgress {
    /// A progress display for a run of `epochs` epochs.
    pub fn new(epochs: usize) -> Self {
        Self {
            bar: None,
            interactive: std::io::stderr().is_terminal(),
            epochs,
            multi: None,
        }
    }
}

impl Observer for TrainProgress {
    fn epoch_start(&mut self, epoch: usize, _epochs: usize, batches: usize, _lr: f64) {
        if !self.interactive {
            return;
        }
        let bar = match &self.multi {
            Some(multi) => multi.add(ProgressBar::new(batches as u64)),
            None => {
                ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr())
            }
        };
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  {elapsed}<{eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        self.bar = Some(bar);
    }

    fn batch_end(&mut self, _epoch: usize, batch: usize, _batches: usize, loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(batch as u64 + 1);
            if batch.is_multiple_of(10) {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let line = format!(
            "epoch {:>3}/{}  lr {:.2e}  train loss {:.4}  acc {:.4}  |  test loss {:.4}  acc {:.4}  |  {:.1}s, {:.0} img/s",
            m.epoch + 1,
            self.epochs,
            m.lr,
            m.train_loss,
            m.train_acc,
            m.test_loss,
            m.test_acc,
            m.wall_s,
            m.images_per_s
        );
        // Under a suite's bar, print through it so the bars stay intact.
        match &self.multi {
            Some(multi) if self.interactive => {
                let _ = multi.println(line);
            }
            _ => println!("{line}"),
        }
    }
}

/// Progress of a batch of runs ([`acbench_suite::runner::Runner::run_all`]):
/// an overall bar (runs done / total, ETA) above the current epoch's bar on
/// a terminal; one line per run and per epoch otherwise.
#[derive(Default)]
pub struct BatchProgress {
    batch: Option<SuiteProgress>,
}

impl Observer for BatchProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        if let Some(b) = &mut self.batch {
            b.epoch_start(epoch, epochs, batches, lr);
        }
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        if let Some(b) = &mut self.batch {
            b.batch_end(epoch, batch, batches, loss);
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(b) = &mut self.batch {
            b.epoch_end(m);
        }
    }
}

impl RunObserver for BatchProgress {
    fn run_start(&mut self, spec: &RunSpec, index: usize, total: usize) {
        if let Some(b) = &mut self.batch {
            b.run_start(spec, index, total);
        }
    }

    fn notice(&mut self, message: &str) {
        match &mut self.batch {
            Some(b) => b.notice(message),
            None => eprintln!("  {message}"),
        }
    }
}

impl BatchObserver for BatchProgress {
    fn batch_start(&mut self, runs: usize) {
        self.batch = Some(SuiteProgress::new(runs));
    }

    fn run_end(&mut self, _: &RunSpec, outcome: &Outcome, summary: &Summary) {
        if let Some(b) = &mut self.batch {
            b.run_end(outcome);
        }
        crate::resources::log_run_end(summary);
    }

    fn batch_done(&mut self) {
        if let Some(mut b) = self.batch.take() {
            b.finish();
        }
    }
}

/// The bars of one batch of runs.
struct SuiteProgress {
    multi: MultiProgress,
    suite_bar: Option<ProgressBar>,
    epoch: TrainProgress,
}

impl SuiteProgress {
    /// Progress for a batch of `runs` runs.
    fn new(runs: usize) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let suite_bar = interactive.then(|| {
            let bar = multi.add(ProgressBar::new(runs as u64));
            let style = ProgressStyle::with_template(
                "suite [{bar:30}] {pos}/{len} runs  {msg}  {elapsed}<{eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        let mut epoch = TrainProgress::new(0);
        epoch.multi = Some(multi.clone());
        Self {
            multi,
            suite_bar,
            epoch,
        }
    }

    /// A run ended (trained now or found in the ledger).
    fn run_end(&mut self, outcome: &Outcome) {
        if let Some(bar) = &self.suite_bar {
            bar.inc(1);
        }
        if let Outcome::Replayed(status) = outcome {
            let line = format!("  already in the ledger: {status:?}");
            match &self.suite_bar {
                Some(bar) => bar.set_message(line.trim().to_owned()),
                None => println!("{line}"),
            }
        }
    }

    /// The batch is done: clear the bars.
    fn finish(&mut self) {
        if let Some(bar) = self.suite_bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl Observer for SuiteProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        self.epoch.epoch_start(epoch, epochs, batches, lr);
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        self.epoch.batch_end(epoch, batch, batches, loss);
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        self.epoch.epoch_end(m);
    }
}

impl RunObserver for SuiteProgress {
    fn run_start(&mut self, spec: &RunSpec, index: usize, total: usize) {
        self.epoch.epochs = spec.train.epochs;
        let line = format!("run {}/{total}: {}", index + 1, spec.label());
        match &self.suite_bar {
            Some(bar) => {
                bar.set_message(format!("{} / {}", spec.model.label, spec.activation.label));
                bar.println(line);
            }
            None => println!("{line}"),
        }
    }

    fn notice(&mut self, message: &str) {
        // On stderr, through the bars when they are drawn.
        let line = format!("  {message}");
        match &self.suite_bar {
            Some(_) => self.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}
