//! The datasets adamant knows, where it looks for them, and the loaders.
//!
//! [`find`] looks in this order and takes the first directory that holds every file of the
//! dataset:
//!
//! 1. a directory given explicitly (`--data DIR`): final, with no fallback and no download;
//!    a file missing there is an error naming it;
//! 2. `$ADAMANT_DATA/<name>/`;
//! 3. `./datasets/<name>/`;
//! 4. `/usr/share/datasets/<name>/` (where Debian's `dataset-fashion-mnist` installs).
//!
//! A file counts under its own name or with `.gz` removed or added, so MNIST may be stored
//! uncompressed and CIFAR-10's `.bin` files compressed. [`load`] falls back to a download into
//! `$ADAMANT_DATA/<name>/` (or `./datasets/<name>/`) when nothing is found, from
//! `$ADAMANT_MIRROR` if that is set (a [`Mirror`]: `<base>/<name>/<file>`), else from the
//! dataset's own mirrors.
//!
//! Local files are checked for format (every header, size and label), not for checksums:
//! hashing 200 MB on every load would cost more than reading it, and a download is verified
//! against the constants here before it is kept. The shared CIFAR-10 copy used for development
//! is a JPEG-derived re-encoding whose bytes differ from the original by design, so the
//! CIFAR-10 checksums here (of the original files) would refuse it; it loads all the same.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::spec::{DataFile, DatasetSpec, Mirror, Packaging};
use crate::{cifar, idx, DataError, Dataset, Splits};

/// Environment variable naming a directory of datasets (`$ADAMANT_DATA/<name>/`).
pub const DATA_ENV: &str = "ADAMANT_DATA";
/// Directory of datasets relative to the working directory, searched after `$ADAMANT_DATA`.
pub const LOCAL_ROOT: &str = "./datasets";
/// System-wide directory of datasets, searched last (Debian's dataset packages install here).
pub const SYSTEM_ROOT: &str = "/usr/share/datasets";
/// Side length of MNIST and Fashion-MNIST images; their loaders refuse other sizes.
pub const IDX_SIDE: usize = 28;

/// MNIST (Yann LeCun and Corinna Cortes, CC BY-SA 3.0): 60,000 + 10,000 handwritten digits.
///
/// Files in the order train images, train labels, test images, test labels (the IDX loader
/// relies on it); sha256 of the uncompressed files as distributed. Content sizes follow from
/// the IDX headers (16 + n x 784 bytes of images, 8 + n of labels); the `.gz` sizes are those
/// of the original files (9,912,422, 28,881, 1,648,877 and 4,542 bytes), the ones both mirrors
/// serve and torchvision's download logs show.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    files: &[
        DataFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            size: 47_040_016,
            download_size: 9_912_422,
        },
        DataFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            size: 60_008,
            download_size: 28_881,
        },
        DataFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            size: 7_840_016,
            download_size: 1_648_877,
        },
        DataFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            size: 10_008,
            download_size: 4_542,
        },
    ],
    // yann.lecun.com is the original home but refuses automated downloads; these two
    // mirrors are the ones torchvision and TensorFlow fetch from.
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    packaging: Packaging::Files,
};

/// Fashion-MNIST (Zalando, MIT): 60,000 + 10,000 28x28 images of clothing, MNIST's format.
///
/// Same file names and order as [`MNIST`]; sha256 of the uncompressed files (computed from
/// Debian's `dataset-fashion-mnist`, which ships the upstream data). The `.gz` sizes are the
/// upstream files' (26,421,880, 29,515, 4,422,102 and 5,148 bytes, as Keras's and
/// torchvision's download logs show for both mirrors below); Debian's copies are the same
/// gzip streams without the stored file name, 23 or 24 bytes shorter.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    files: &[
        DataFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            size: 47_040_016,
            download_size: 26_421_880,
        },
        DataFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            size: 60_008,
            download_size: 29_515,
        },
        DataFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            size: 7_840_016,
            download_size: 4_422_102,
        },
        DataFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            size: 10_008,
            download_size: 5_148,
        },
    ],
    // The authors' bucket is published as its S3 *website* endpoint,
    // http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (their README, torchvision),
    // which AWS serves over plain HTTP only ("Amazon S3 website endpoints do not support
    // HTTPS", S3 user guide, "Website endpoints"). A website endpoint only serves objects
    // that are publicly readable, and public objects are served by the bucket's REST endpoint
    // over HTTPS too (no dot in the bucket name, so AWS's wildcard certificate covers it);
    // other dataset loaders already fetch Fashion-MNIST from that address. Keras's copy on
    // Google Cloud Storage is the second mirror, also HTTPS (its download logs show the
    // upstream sizes). No plain-HTTP mirror is left: the checksums would catch tampering, but
    // plain HTTP shows everyone on the way what is fetched, and lets them stall or pad it.
    mirrors: &[
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ],
    packaging: Packaging::Files,
};

/// CIFAR-10 (Alex Krizhevsky, Vinod Nair and Geoffrey Hinton): 50,000 + 10,000 32x32 colour
/// images in ten classes, in the binary version's files.
///
/// Downloaded as one archive ([`crate::spec::CIFAR10_ARCHIVE`], verified by its size and
/// sha256); the per-file sha256 are those of the ORIGINAL uncompressed `.bin` files (as pinned
/// by torchvision-ruby), checked on extraction with their sizes (10,000 records of 3,073
/// bytes each). `batches.meta.txt` (class names) is
/// read when present but not required. Local copies are never checked against these sums
/// (see the module documentation): the shared development copy is JPEG-derived and differs.
pub const CIFAR10: DatasetSpec = DatasetSpec {
    name: "cifar10",
    files: &[
        DataFile {
            name: "data_batch_1.bin",
            sha256: "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
            size: 30_730_000,
            download_size: 30_730_000,
        },
        DataFile {
            name: "data_batch_2.bin",
            sha256: "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
            size: 30_730_000,
            download_size: 30_730_000,
        },
        DataFile {
            name: "data_batch_3.bin",
            sha256: "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
            size: 30_730_000,
            download_size: 30_730_000,
        },
        DataFile {
            name: "data_batch_4.bin",
            sha256: "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
            size: 30_730_000,
            download_size: 30_730_000,
        },
        DataFile {
            name: "data_batch_5.bin",
            sha256: "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
            size: 30_730_000,
            download_size: 30_730_000,
        },
        DataFile {
            name: "test_batch.bin",
            sha256: "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
            size: 30_730_000,
            download_size: 30_730_000,
        },
    ],
    mirrors: &["https://www.cs.toronto.edu/~kriz/"],
    packaging: crate::spec::CIFAR10_ARCHIVE,
};

/// The subset of MNIST bundled in the repository (`datasets/mnist-mini/`): the first 10,000
/// training images and all 10,000 test images, in MNIST's file names and format.
///
/// It has no mirror: `datasets/mnist-mini/make.py` regenerates it from MNIST, byte for byte
/// (the sha256 below are of its uncompressed files, the download sizes those of the bundled
/// `.gz` files).
pub const MNIST_MINI: DatasetSpec = DatasetSpec {
    name: "mnist-mini",
    files: &[
        DataFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "2889698e6bc3614913e76901316712919d1998fc2b44512451bfe65bc1e668b1",
            size: 7_840_016,
            download_size: 1_609_526,
        },
        DataFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "651e38e2ac0632f5113ec18f1df4977117f953197819034009971a6675a0df78",
            size: 10_008,
            download_size: 4_997,
        },
        DataFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            size: 7_840_016,
            download_size: 1_602_050,
        },
        DataFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            size: 10_008,
            download_size: 4_517,
        },
    ],
    mirrors: &[],
    packaging: Packaging::Files,
};

/// Every dataset adamant knows, for lookups by name (command lines).
pub const DATASETS: [&DatasetSpec; 4] = [&MNIST, &FASHION_MNIST, &CIFAR10, &MNIST_MINI];

/// The known dataset called `name` (`mnist`, `fashion-mnist`, `cifar10`, `mnist-mini`).
pub fn spec_by_name(name: &str) -> Option<&'static DatasetSpec> {
    DATASETS.into_iter().find(|s| s.name == name)
}

/// The class names of a dataset, index = label (CIFAR-10's may be overridden by its
/// `batches.meta.txt`).
pub fn class_names(spec: &DatasetSpec) -> Vec<String> {
    const FASHION: [&str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    if is_cifar(spec) {
        cifar::CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    } else if spec.name == FASHION_MNIST.name {
        FASHION.iter().map(|s| s.to_string()).collect()
    } else {
        (0..10).map(|d| d.to_string()).collect()
    }
}

/// Whether `spec` is in CIFAR-10's binary layout (rather than four IDX files).
fn is_cifar(spec: &DatasetSpec) -> bool {
    spec.files.iter().any(|f| f.name == cifar::TEST_FILE)
}

/// The path of file `name` in `dir`, under its own name or with `.gz` removed or added.
pub fn resolve_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let other = match name.strip_suffix(".gz") {
        Some(plain) => plain.to_string(),
        None => format!("{name}.gz"),
    };
    [dir.join(name), dir.join(other)].into_iter().find(|p| p.is_file())
}

/// Why `dir` does not hold `spec` (one line), or `None` if it holds every file.
fn check_dir(spec: &DatasetSpec, dir: &Path) -> Option<String> {
    if !dir.exists() {
        return Some(format!("{}: no such directory", dir.display()));
    }
    if !dir.is_dir() {
        return Some(format!("{}: not a directory", dir.display()));
    }
    let missing: Vec<&str> =
        spec.files.iter().filter(|f| resolve_file(dir, f.name).is_none()).map(|f| f.name).collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!("{}: missing {}", dir.display(), missing.join(", ")))
    }
}

/// The data roots searched when no directory is given, in order: `$ADAMANT_DATA` (if set
/// and not empty), `./datasets`, `/usr/share/datasets`.
pub fn search_roots() -> Vec<PathBuf> {
    roots_from(std::env::var_os(DATA_ENV))
}

/// [`search_roots`] for a given value of `$ADAMANT_DATA`.
fn roots_from(env: Option<OsString>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = env.filter(|v| !v.is_empty()).map(PathBuf::from).into_iter().collect();
    roots.push(PathBuf::from(LOCAL_ROOT));
    roots.push(PathBuf::from(SYSTEM_ROOT));
    roots
}

/// Finds the directory holding `spec`'s files: `explicit` if given (final: a file missing
/// there is an error naming it), else the first of [`search_roots`]`/<name>/` that holds them.
///
/// `NotFound` lists every place looked at and why it was not used.
pub fn find(spec: &DatasetSpec, explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    find_in(spec, explicit, &search_roots())
}

/// [`find`] with the data roots given (in order) instead of read from the environment.
pub fn find_in(spec: &DatasetSpec, explicit: Option<&Path>, roots: &[PathBuf]) -> Result<PathBuf, DataError> {
    let not_found = |searched| DataError::NotFound { dataset: spec.name.to_string(), searched };
    if let Some(dir) = explicit {
        return match check_dir(spec, dir) {
            None => Ok(dir.to_path_buf()),
            Some(why) => Err(not_found(vec![format!("{why} (directory given explicitly)")])),
        };
    }
    let mut searched = Vec::new();
    for root in roots {
        let dir = root.join(spec.name);
        match check_dir(spec, &dir) {
            None => return Ok(dir),
            Some(why) => searched.push(why),
        }
    }
    Err(not_found(searched))
}

/// Where [`load`] downloads `spec` to: `$ADAMANT_DATA/<name>/` if that variable is set,
/// else `./datasets/<name>/`.
pub fn download_dir(spec: &DatasetSpec) -> PathBuf {
    let root =
        std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()).map_or(PathBuf::from(LOCAL_ROOT), PathBuf::from);
    root.join(spec.name)
}

/// The path of a file `find` has established exists (under some accepted spelling).
fn file_in(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    // The directory can change between the lookup and the read: report that as the missing
    // file rather than assume.
    resolve_file(dir, name).ok_or_else(|| {
        DataError::io(dir.join(name), std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"))
    })
}

/// Reads `spec`'s train and test splits from `dir` (which must hold its files), checking
/// every file's format; see [`find`] for locating `dir`.
pub fn read_dir(spec: &DatasetSpec, dir: &Path) -> Result<Splits, DataError> {
    if is_cifar(spec) {
        read_cifar_dir(spec, dir)
    } else {
        read_idx_dir(spec, dir)
    }
}

/// MNIST-like: four IDX files, 28x28 images, both splits read at once.
fn read_idx_dir(spec: &DatasetSpec, dir: &Path) -> Result<Splits, DataError> {
    let [train_x, train_y, test_x, test_y] = spec.files else {
        return Err(DataError::format(
            dir,
            "a dataset spec of 4 IDX files (train images, train labels, test images, test labels)",
            format!("{} files in spec '{}'", spec.files.len(), spec.name),
        ));
    };
    let paths = [train_x, train_y, test_x, test_y].map(|f| file_in(dir, f.name));
    let [train_x, train_y, test_x, test_y] = paths;
    let (train_x, train_y, test_x, test_y) = (train_x?, train_y?, test_x?, test_y?);
    let read = |x: &Path, y: &Path| -> Result<Dataset, DataError> {
        let (d, [rows, cols]) = idx::read_split(x, y)?;
        if (rows, cols) != (IDX_SIDE, IDX_SIDE) {
            return Err(DataError::format(
                x,
                format!("{IDX_SIDE} x {IDX_SIDE} images ({})", spec.name),
                format!("{rows} x {cols}"),
            ));
        }
        Ok(d)
    };
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| read(&test_x, &test_y));
        (read(&train_x, &train_y), test.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    Ok(Splits { train: train?, test: test?, source: dir.to_path_buf(), class_names: class_names(spec) })
}

/// CIFAR-10: five training batches and a test batch, class names from `batches.meta.txt`
/// when present.
fn read_cifar_dir(spec: &DatasetSpec, dir: &Path) -> Result<Splits, DataError> {
    let (train_files, test_files): (Vec<&DataFile>, Vec<&DataFile>) =
        spec.files.iter().partition(|f| f.name != cifar::TEST_FILE);
    let paths =
        |files: Vec<&DataFile>| files.iter().map(|f| file_in(dir, f.name)).collect::<Result<Vec<_>, _>>();
    let (train_paths, test_paths) = (paths(train_files)?, paths(test_files)?);
    let (train, test) = cifar::read_splits(&train_paths, &test_paths)?;
    let meta = dir.join(cifar::META_FILE);
    let class_names = if meta.is_file() { cifar::read_class_names(&meta)? } else { class_names(spec) };
    Ok(Splits { train, test, source: dir.to_path_buf(), class_names })
}

/// Loads `spec`: [`find`]s it (in `dir` if given, which is final), or, when it is nowhere
/// and `allow_download` is set, downloads it into [`download_dir`] and reads it from there.
/// The download comes from `$ADAMANT_MIRROR` if that is set (see [`Mirror`]), else from the
/// dataset's own mirrors.
///
/// A failed download is reported inside the `NotFound` error, after the places searched.
pub fn load(spec: &DatasetSpec, dir: Option<&Path>, allow_download: bool) -> Result<Splits, DataError> {
    load_with_mirror(spec, dir, allow_download, None)
}

/// [`load`], downloading from `mirror` if one is given: it replaces `$ADAMANT_MIRROR` (which
/// `None` reads), as the examples' `--mirror` flag does.
pub fn load_with_mirror(
    spec: &DatasetSpec,
    dir: Option<&Path>,
    allow_download: bool,
    mirror: Option<&Mirror>,
) -> Result<Splits, DataError> {
    let found = match find(spec, dir) {
        Ok(found) => found,
        Err(DataError::NotFound { dataset, mut searched }) if dir.is_none() && allow_download => {
            let target = download_dir(spec);
            if let Err(why) = fetch(spec, &target, mirror) {
                searched.push(format!("download into {}: {why}", target.display()));
                return Err(DataError::NotFound { dataset, searched });
            }
            find(spec, Some(&target))?
        }
        Err(e) => return Err(e),
    };
    read_dir(spec, &found)
}

/// Downloads `spec` into `target` (cargo feature `download`) from `mirror`, else from
/// `$ADAMANT_MIRROR`, else from the dataset's own mirrors.
#[cfg(feature = "download")]
fn fetch(spec: &DatasetSpec, target: &Path, mirror: Option<&Mirror>) -> Result<(), String> {
    use crate::download::{download_with, DownloadOptions};
    let mirror = match mirror {
        Some(mirror) => Some(mirror.clone()),
        None => Mirror::from_env()?,
    };
    download_with(spec, target, &DownloadOptions { mirror, ..DownloadOptions::default() })
        .map_err(|e| e.to_string())
}

/// Without the cargo feature `download` there is no HTTP client to fetch with: say so, so
/// that the error lists it after the places searched.
#[cfg(not(feature = "download"))]
fn fetch(_spec: &DatasetSpec, _target: &Path, _mirror: Option<&Mirror>) -> Result<(), String> {
    Err("not attempted: adamant-data was built without its `download` feature".to_string())
}

/// MNIST from `dir` if given, else from the first place [`find`] lists, else downloaded.
pub fn mnist(dir: Option<&Path>) -> Result<Splits, DataError> {
    load(&MNIST, dir, true)
}

/// Fashion-MNIST from `dir` if given, else from the first place [`find`] lists (including
/// Debian's `/usr/share/datasets/fashion-mnist/`), else downloaded.
pub fn fashion_mnist(dir: Option<&Path>) -> Result<Splits, DataError> {
    load(&FASHION_MNIST, dir, true)
}

/// CIFAR-10 from `dir` if given, else from the first place [`find`] lists, else downloaded.
pub fn cifar10(dir: Option<&Path>) -> Result<Splits, DataError> {
    load(&CIFAR10, dir, true)
}

/// The MNIST subset bundled with the repository ([`MNIST_MINI`]): from `datasets/mnist-mini/`
/// of the source tree this crate was built from, else `./datasets/mnist-mini/`. Never
/// downloads.
pub fn mnist_mini() -> Result<Splits, DataError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/data -> repository root, without `..` components in the reported path.
    let bundled =
        manifest.parent().and_then(Path::parent).unwrap_or(manifest).join("datasets").join(MNIST_MINI.name);
    let mut searched = Vec::new();
    for dir in [bundled, Path::new(LOCAL_ROOT).join(MNIST_MINI.name)] {
        match check_dir(&MNIST_MINI, &dir) {
            None => return read_dir(&MNIST_MINI, &dir),
            Some(why) => searched.push(why),
        }
    }
    Err(DataError::NotFound { dataset: MNIST_MINI.name.to_string(), searched })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_put_the_environment_first() {
        let roots = roots_from(Some("/data".into()));
        assert_eq!(
            roots,
            [PathBuf::from("/data"), PathBuf::from("./datasets"), PathBuf::from("/usr/share/datasets")]
        );
        assert_eq!(roots_from(None).len(), 2);
        assert_eq!(roots_from(Some("".into())).len(), 2, "an empty ADAMANT_DATA counts as unset");
    }

    #[test]
    fn specs_are_found_by_name() {
        for spec in DATASETS {
            assert_eq!(spec_by_name(spec.name), Some(spec));
            assert!(spec
                .files
                .iter()
                .all(|f| f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit())));
        }
        assert_eq!(spec_by_name("imagenet"), None);
        assert!(
            DATASETS
                .iter()
                .flat_map(|s| s.mirrors.iter())
                .all(|m| m.starts_with("https://") && m.ends_with('/')),
            "every built-in mirror is an https base ending in /"
        );
        assert_eq!(class_names(&CIFAR10)[9], "truck");
        assert_eq!(class_names(&FASHION_MNIST)[9], "Ankle boot");
        assert_eq!(class_names(&MNIST)[3], "3");
    }

    #[test]
    fn sizes_follow_from_the_formats() {
        // IDX: a 16-byte header and 28 x 28 bytes per image, an 8-byte header and one byte per
        // label; CIFAR-10: 10,000 records of 1 + 3,072 bytes per batch.
        let idx = |train: u64, test: u64| [16 + train * 784, 8 + train, 16 + test * 784, 8 + test];
        for (spec, sizes) in [
            (&MNIST, idx(60_000, 10_000)),
            (&FASHION_MNIST, idx(60_000, 10_000)),
            (&MNIST_MINI, idx(10_000, 10_000)),
        ] {
            assert_eq!(spec.files.iter().map(|f| f.size).collect::<Vec<_>>(), sizes, "{}", spec.name);
        }
        assert!(CIFAR10.files.iter().all(|f| f.size == 10_000 * 3_073));
        for file in DATASETS.iter().flat_map(|s| s.files) {
            if file.name.ends_with(".gz") {
                assert!(file.download_size < file.size, "{}: compressed", file.name);
            } else {
                assert_eq!(file.download_size, file.size, "{}: served as it is", file.name);
            }
        }
    }
}
