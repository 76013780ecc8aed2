//! What a run measured: per-epoch metrics and the per-step losses, with the CSV form that
//! the logs and checkpoints hold.

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Global step count at the end of the epoch.
    pub step: u64,
    /// Mean training loss over the epoch's minibatches (train mode, as it was optimised).
    pub train_loss: f64,
    /// Fraction of training examples classified correctly during the epoch, if applicable.
    pub train_accuracy: Option<f64>,
    /// Mean loss on the test set (eval mode).
    pub test_loss: f64,
    /// Test accuracy in [0, 1], if applicable.
    pub test_accuracy: Option<f64>,
    /// Learning rate at the last step of the epoch.
    pub lr: f32,
    /// Mean test loss with the averaged weights ([`crate::train::FitConfig::average`]), when
    /// the run averages.
    pub averaged_test_loss: Option<f64>,
    /// Test accuracy with the averaged weights, when the run averages and the task has one.
    pub averaged_test_accuracy: Option<f64>,
    /// Wall time of the epoch's training steps, in seconds (evaluation excluded).
    pub seconds: f64,
}

impl EpochMetrics {
    /// Header of the per-epoch CSV.
    pub const CSV_HEADER: &'static str =
        "epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,lr,seconds";
    /// The columns a run that averages its weights adds after [`EpochMetrics::CSV_HEADER`]'s
    /// (only then, so the logs of other runs keep their shape).
    pub const CSV_AVERAGED: &'static str = "averaged_test_loss,averaged_test_accuracy";

    fn csv_row(&self, averaged: bool) -> String {
        let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        let mut row = format!(
            "{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.train_loss,
            opt(self.train_accuracy),
            self.test_loss,
            opt(self.test_accuracy),
            self.lr,
            self.seconds
        );
        if averaged {
            row.push_str(&format!(",{},{}", opt(self.averaged_test_loss), opt(self.averaged_test_accuracy)));
        }
        row
    }

    fn from_csv_row(row: &str, averaged: bool) -> Option<EpochMetrics> {
        let f: Vec<&str> = row.split(',').collect();
        if f.len() != if averaged { 10 } else { 8 } {
            return None;
        }
        let opt = |s: &str| if s.is_empty() { Some(None) } else { s.parse().ok().map(Some) };
        let (averaged_test_loss, averaged_test_accuracy) =
            if averaged { (opt(f[8])?, opt(f[9])?) } else { (None, None) };
        Some(EpochMetrics {
            epoch: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            train_loss: f[2].parse().ok()?,
            train_accuracy: opt(f[3])?,
            test_loss: f[4].parse().ok()?,
            test_accuracy: opt(f[5])?,
            lr: f[6].parse().ok()?,
            seconds: f[7].parse().ok()?,
            averaged_test_loss,
            averaged_test_accuracy,
        })
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// One entry per completed epoch (including those before a resume).
    pub epochs: Vec<EpochMetrics>,
    /// `(step, loss)` of every training step of this process (not those before a resume).
    pub iterations: Vec<(u64, f32)>,
}

impl History {
    /// The metrics of the last completed epoch.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }

    /// Total training wall time over all epochs, in seconds.
    pub fn seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// The per-epoch CSV (header and one row per epoch), with the averaged columns
    /// ([`EpochMetrics::CSV_AVERAGED`]) when an epoch has an averaged test loss.
    pub fn epochs_csv(&self) -> String {
        let averaged = self.epochs.iter().any(|e| e.averaged_test_loss.is_some());
        let mut s = EpochMetrics::CSV_HEADER.to_string();
        if averaged {
            s = format!("{s},{}", EpochMetrics::CSV_AVERAGED);
        }
        s.push('\n');
        for e in &self.epochs {
            s.push_str(&e.csv_row(averaged));
            s.push('\n');
        }
        s
    }

    /// Parses [`History::epochs_csv`] (used to restore the history from a checkpoint): the
    /// header says whether the rows carry the averaged columns.
    pub fn parse_epochs_csv(text: &str) -> Option<Vec<EpochMetrics>> {
        let mut lines = text.lines();
        let averaged = match lines.next() {
            Some(h) if h == EpochMetrics::CSV_HEADER => false,
            Some(h) => {
                h.strip_prefix(EpochMetrics::CSV_HEADER)?.strip_prefix(',')? == EpochMetrics::CSV_AVERAGED
            }
            None => false,
        };
        lines.filter(|l| !l.is_empty()).map(|row| EpochMetrics::from_csv_row(row, averaged)).collect()
    }
}
