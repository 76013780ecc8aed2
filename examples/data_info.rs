//! Finds a dataset, reads and checks all of it, and prints what it holds.
//!
//! ```text
//! cargo run --release --example data_info -- --dataset mnist
//! cargo run --release --example data_info -- --dataset cifar10 --data ../shared/datasets/cifar10-jpeg
//! cargo run --release --example data_info -- --dataset mnist-mini
//! ```
//!
//! Prints where the data was found, the train/test counts, a class histogram with the class
//! names and the mean pixel value. On missing or bad data it prints the loader's error (one
//! line naming the file and what was expected versus found) and exits with status 2.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use adamant::data::locate::{self, DATASETS};
use adamant::data::{Dataset, Splits};
use adamant_lab::cli::{self, exit_on_error, CliError};
use adamant_lab::lexopt::prelude::*;

const USAGE: &str = "\
Usage: data_info --dataset NAME [--data DIR] [--download]

  --dataset NAME   mnist, fashion-mnist, cifar10 or mnist-mini
  --data DIR       read the dataset from DIR only (no other place is searched)
  --download       if the dataset is nowhere, download it (into $ADAMANT_DATA/NAME or
                   ./datasets/NAME)
  --help           this text

Without --data, looks in $ADAMANT_DATA/NAME, ./datasets/NAME, /usr/share/datasets/NAME.
";

/// The parsed command line.
struct Args {
    dataset: String,
    data: Option<PathBuf>,
    download: bool,
}

/// `None` for `--help`.
fn parse_args() -> Result<Option<Args>, CliError> {
    let mut parser = adamant_lab::lexopt::Parser::from_env();
    let (mut dataset, mut data, mut download) = (None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("dataset") => dataset = Some(cli::value(&mut parser, "--dataset")?),
            Long("data") => data = Some(cli::path_value(&mut parser, "--data")?),
            Long("download") => download = true,
            Long("help") | Short('h') => return Ok(None),
            other => return Err(cli::unexpected(other)),
        }
    }
    let names: Vec<&str> = DATASETS.iter().map(|s| s.name).collect();
    let dataset = dataset.ok_or_else(|| {
        CliError::invalid("--dataset", format!("missing; expected one of: {}", names.join(", ")))
    })?;
    if locate::spec_by_name(&dataset).is_none() {
        return Err(CliError::invalid(
            "--dataset",
            format!("unknown dataset '{}' (expected one of: {})", dataset.escape_debug(), names.join(", ")),
        ));
    }
    Ok(Some(Args { dataset, data, download }))
}

/// Mean over all pixels, summed in f64 (a 150-million-term f32 sum would drift).
fn mean_pixel(d: &Dataset) -> f64 {
    let data = d.images.data();
    data.iter().map(|&x| x as f64).sum::<f64>() / data.len().max(1) as f64
}

/// A split's summary: count, shape, mean pixel, and one histogram line per class.
fn describe_split(out: &mut String, name: &str, d: &Dataset, class_names: &[String]) {
    let (shape, mean) = (d.images.shape(), mean_pixel(d));
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{name}: {} examples, images {shape:?}, mean pixel {mean:.4}", d.len());
    let counts = d.class_counts(class_names.len());
    let width = class_names.iter().map(|n| n.len()).max().unwrap_or(0);
    for (i, (class, count)) in class_names.iter().zip(counts).enumerate() {
        let share = 100.0 * count as f64 / d.len().max(1) as f64;
        let _ = writeln!(out, "  {i} {class:<width$} {count:>6} ({share:4.1}%)");
    }
}

fn main() {
    let Some(args) = exit_on_error(parse_args()) else {
        print!("{USAGE}");
        return;
    };
    let spec = locate::spec_by_name(&args.dataset).expect("checked in parse_args");
    let start = Instant::now();
    // The bundled subset has its own lookup (the source tree first); an explicit --data
    // reads any directory holding its four files.
    let splits: Splits = exit_on_error(if spec.name == locate::MNIST_MINI.name && args.data.is_none() {
        locate::mnist_mini()
    } else {
        locate::load(spec, args.data.as_deref(), args.download)
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut report = format!(
        "dataset {} from {} (read and checked in {seconds:.2} s)\n",
        spec.name,
        splits.source.display()
    );
    describe_split(&mut report, "train", &splits.train, &splits.class_names);
    describe_split(&mut report, "test", &splits.test, &splits.class_names);
    match io::stdout().lock().write_all(report.as_bytes()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != ErrorKind::BrokenPipe => exit_on_error(Err::<(), _>(e)),
        _ => {}
    }
}
