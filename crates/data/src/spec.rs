//! What each dataset consists of and where it can be downloaded from.
//!
//! The checksums are constants in the code: a download is accepted only if every file hashes
//! to its constant, whatever mirror it came from.

/// One file of a dataset as stored in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// File name in the dataset directory (e.g. `train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    /// sha256 (lowercase hex) of the file's *uncompressed* content: gzip streams of the same
    /// data differ between mirrors, the data does not.
    pub sha256: &'static str,
}

/// How a dataset's files arrive from a mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packaging {
    /// Each [`DataFile`] is fetched as `<mirror><name>`.
    Files,
    /// One archive `<mirror><name>` with this sha256 (of the archive bytes) is fetched and the
    /// dataset's files are extracted from it.
    TarGz {
        /// Archive file name on the mirror.
        name: &'static str,
        /// sha256 of the archive (lowercase hex).
        sha256: &'static str,
        /// Directory inside the archive holding the files.
        inner_dir: &'static str,
    },
}

/// A dataset: its name, files, mirrors and packaging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Directory name under a data root (`mnist`, `fashion-mnist`, `cifar10`).
    pub name: &'static str,
    /// The files a complete copy holds.
    pub files: &'static [DataFile],
    /// Base URLs, tried in order.
    pub mirrors: &'static [&'static str],
    /// How the files arrive.
    pub packaging: Packaging,
}

/// The canonical CIFAR-10 binary archive (`cifar-10-binary.tar.gz`, 170,052,171 bytes), its
/// batches under `cifar-10-batches-bin/`.
///
/// The dataset's authors publish only an md5 for it (`c32a1d4ab5d03f1284b67883e8d87530`, on
/// the CIFAR-10 home page). The sha256 here is the one independent loaders pin for the same
/// archive (gomlx's `examples/cifar/cifar.go`, ankane/torchvision-ruby's
/// `lib/torchvision/datasets/cifar10.rb`); a third project's records give this sha256 together
/// with the authors' md5 for the same 170,052,171-byte file.
pub const CIFAR10_ARCHIVE: Packaging = Packaging::TarGz {
    name: "cifar-10-binary.tar.gz",
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    inner_dir: "cifar-10-batches-bin",
};
