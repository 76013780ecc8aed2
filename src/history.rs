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
    /// Wall time of the epoch's training steps, in seconds (evaluation excluded).
    pub seconds: f64,
}

impl EpochMetrics {
    /// Header of the per-epoch CSV.
    pub const CSV_HEADER: &'static str =
        "epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,lr,seconds";

    fn csv_row(&self) -> String {
        let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.train_loss,
            opt(self.train_accuracy),
            self.test_loss,
            opt(self.test_accuracy),
            self.lr,
            self.seconds
        )
    }

    fn from_csv_row(row: &str) -> Option<EpochMetrics> {
        let f: Vec<&str> = row.split(',').collect();
        if f.len() != 8 {
            return None;
        }
        let opt = |s: &str| if s.is_empty() { Some(None) } else { s.parse().ok().map(Some) };
        Some(EpochMetrics {
            epoch: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            train_loss: f[2].parse().ok()?,
            train_accuracy: opt(f[3])?,
            test_loss: f[4].parse().ok()?,
            test_accuracy: opt(f[5])?,
            lr: f[6].parse().ok()?,
            seconds: f[7].parse().ok()?,
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

    /// The per-epoch CSV (header and one row per epoch).
    pub fn epochs_csv(&self) -> String {
        let mut s = format!("{}\n", EpochMetrics::CSV_HEADER);
        for e in &self.epochs {
            s.push_str(&e.csv_row());
            s.push('\n');
        }
        s
    }

    /// Parses [`History::epochs_csv`] (used to restore the history from a checkpoint).
    pub fn parse_epochs_csv(text: &str) -> Option<Vec<EpochMetrics>> {
        text.lines().skip(1).filter(|l| !l.is_empty()).map(EpochMetrics::from_csv_row).collect()
    }
}
