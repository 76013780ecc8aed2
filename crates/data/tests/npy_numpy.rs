//! The `.npy` reader on files written by real NumPy (`fixtures/gen_npy.py`, committed), and a
//! user's own data through [`Dataset::from_tensors`] into the same batches as a built-in
//! dataset.

use std::path::{Path, PathBuf};

use adamant_data::npy::{self, NpyArray, NpyData};
use adamant_data::{BatchOptions, Batches, DataError, Dataset, DatasetError};
use adamant_tensor::Tensor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy").join(name)
}

fn read(name: &str) -> NpyArray {
    npy::read(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(name: &str) -> String {
    let e = npy::read(&fixture(name)).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(name), "the error must name the file: {text}");
    text
}

#[test]
fn numpy_files_of_every_supported_dtype_read_exactly() {
    let f32s: Vec<f32> = (0..6).map(|i| (i as f32 - 2.5) / 4.0).collect();
    assert_eq!(read("f32_2x3.npy"), NpyArray { shape: vec![2, 3], data: NpyData::F32(f32s) });
    assert_eq!(
        read("f64_4.npy"),
        NpyArray { shape: vec![4], data: NpyData::F64(vec![0.1, -2.0, 1e-3, 3.0]) }
    );
    let bytes: Vec<u8> = (0..12).map(|i| i * 21).collect();
    assert_eq!(read("u8_2x2x3.npy"), NpyArray { shape: vec![2, 2, 3], data: NpyData::U8(bytes) });
    assert_eq!(read("i64_labels.npy"), NpyArray { shape: vec![5], data: NpyData::I64(vec![3, 0, 9, 1, 1]) });
    assert_eq!(read("f32_scalar.npy"), NpyArray { shape: vec![], data: NpyData::F32(vec![7.5]) });
    assert_eq!(read("f32_empty_0x3.npy"), NpyArray { shape: vec![0, 3], data: NpyData::F32(vec![]) });
    for v in ["f32_v2.npy", "f32_v3.npy"] {
        assert_eq!(read(v), NpyArray { shape: vec![3], data: NpyData::F32(vec![0.0, 1.0, 2.0]) }, "{v}");
    }
}

#[test]
fn encode_writes_the_bytes_numpy_save_writes() {
    for name in
        ["f32_2x3.npy", "f64_4.npy", "u8_2x2x3.npy", "i64_labels.npy", "f32_scalar.npy", "f32_empty_0x3.npy"]
    {
        let numpy = std::fs::read(fixture(name)).unwrap();
        assert_eq!(npy::encode(&read(name)), numpy, "{name}");
    }
}

#[test]
fn tensors_and_labels_from_numpy_files() {
    let t = npy::read_tensor(&fixture("u8_2x2x3.npy")).unwrap();
    assert_eq!(t.shape(), &[2, 2, 3]);
    assert_eq!(t.data()[11], 231.0);
    let t = npy::read_tensor(&fixture("f64_4.npy")).unwrap();
    assert_eq!(t.data(), &[0.1f32, -2.0, 1e-3, 3.0]);
    assert_eq!(npy::read_labels(&fixture("i64_labels.npy")).unwrap(), vec![3, 0, 9, 1, 1]);
    let e = npy::read_labels(&fixture("f32_2x3.npy")).unwrap_err().to_string();
    assert!(e.contains("f32_2x3.npy") && e.contains("shape [2, 3]"), "{e}");
}

#[test]
fn fortran_order_big_endian_and_other_dtypes_are_refused_naming_the_file() {
    assert!(refusal("fortran.npy").contains("Fortran order"));
    assert!(refusal("big_endian.npy").contains("big-endian dtype >f4"));
    assert!(refusal("i32.npy").contains("dtype <i4"));
    let missing = npy::read(&fixture("missing.npy")).unwrap_err();
    assert!(matches!(missing, DataError::Io { .. }) && missing.to_string().contains("missing.npy"));
}

#[test]
fn truncated_numpy_files_are_errors_never_panics() {
    let bytes = std::fs::read(fixture("features_5x2x2.npy")).unwrap();
    for cut in 0..bytes.len() {
        let e = npy::parse(&bytes[..cut], Path::new("cut.npy")).unwrap_err().to_string();
        assert!(e.starts_with("cut.npy: "), "{e}");
    }
}

#[test]
fn a_dataset_from_two_npy_files_batches_like_a_built_in_one() {
    let data = npy::read_dataset(&fixture("features_5x2x2.npy"), &fixture("i64_labels.npy")).unwrap();
    assert_eq!((data.images.shape(), data.len()), (&[5usize, 2, 2][..], 5));
    let options = BatchOptions { batch_size: 2, seed: 3, epoch: 1, ..BatchOptions::default() };
    let mut seen = vec![];
    for batch in Batches::new(&data, options) {
        assert_eq!(batch.images.shape()[1..], [2, 2]);
        for (k, &i) in batch.indices.iter().enumerate() {
            // Example i's features are 4i..4i+4 and its label the file's i-th.
            assert_eq!(batch.images.data()[4 * k], 4.0 * i as f32);
            assert_eq!(batch.labels[k], [3, 0, 9, 1, 1][i]);
        }
        seen.extend(batch.indices);
    }
    assert_ne!(seen, vec![0, 1, 2, 3, 4], "shuffled");
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);

    let e = npy::read_dataset(&fixture("features_4x2.npy"), &fixture("i64_labels.npy")).unwrap_err();
    let DataError::Mismatch { path, other, message } = &e else { panic!("{e:?}") };
    assert!(path.ends_with("features_4x2.npy") && other.ends_with("i64_labels.npy"));
    assert_eq!(message, "features of shape [4, 2] hold 4 examples (their first axis) but there are 5 labels");
}

#[test]
fn from_tensors_checks_lengths_and_labels() {
    let x = Tensor::from_vec((0..12).map(|i| i as f32).collect(), &[4, 3]);
    let data = Dataset::from_tensors(x.clone(), vec![0, 1, 2, 1]).unwrap();
    assert_eq!(data.images, x);
    assert_eq!(
        Dataset::from_tensors(x.clone(), vec![0; 5]).unwrap_err(),
        DatasetError::Length { features_shape: vec![4, 3], labels: 5 }
    );
    assert_eq!(
        Dataset::from_tensors(Tensor::from_vec(vec![1.0], &[]), vec![0]).unwrap_err(),
        DatasetError::Scalar
    );
    let e = data.clone().check_labels(2).unwrap_err();
    assert_eq!(e, DatasetError::Label { index: 2, label: 2, num_classes: 2 });
    assert_eq!(e.to_string(), "label 2 of example 2 is not below the number of classes, 2");
    assert_eq!(data.check_labels(3).unwrap().len(), 4);
}
