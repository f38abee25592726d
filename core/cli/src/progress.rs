//! Progress display: indicatif bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;

use acbench_engine::train::{EpochMetrics, Observer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows training progress: a bar per epoch on a terminal; on a pipe or a
/// file only one line per finished epoch, so logs stay readable.
pub struct TrainProgress {
    bar: Option<ProgressBar>,
    interactive: bool,
    epochs: usize,
}

impl TrainProgress {
    /// A progress display for a run of `epochs` epochs.
    pub fn new(epochs: usize) -> Self {
        Self {
            bar: None,
            interactive: std::io::stderr().is_terminal(),
            epochs,
        }
    }
}

impl Observer for TrainProgress {
    fn epoch_start(&mut self, epoch: usize, _epochs: usize, batches: usize, _lr: f64) {
        if !self.interactive {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
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
        println!(
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
    }
}
