//! Text for character-level language models: reading a UTF-8 file, a character vocabulary,
//! the train/validation split, windows of tokens for next-token training, and the names
//! dataset of makemore (Bengio et al.'s MLP language model).
//!
//! Everything follows the PyTorch reference scripts of `shared/bench/`, so that a model
//! trained here sees the same data as its PyTorch twin:
//!
//! * a corpus (`torch_char_gpt.py`): the vocabulary is the sorted distinct characters; the
//!   first 90% of the tokens train and the last 10% validate ([`split_at_fraction`]); a
//!   training batch is `B` windows of `T + 1` tokens at uniformly random offsets
//!   ([`random_windows`]); validation reads the consecutive windows `[T i, T i + T]`
//!   ([`eval_windows`]), every position predicted once;
//! * names (`torch_makemore.py`): the file's whitespace-separated words, word `i` in train if
//!   `i % 10 < 8`, dev if `i % 10 == 8`, test if `i % 10 == 9`; vocabulary `'.'` (0, start and
//!   end of a name) then `a`..`z`; each name gives one example per character plus the final
//!   `'.'`, the context being the previous `context` ids padded with `'.'` ([`Names`]).
//!
//! Reading is bounded like the other readers: a file larger than [`MAX_TEXT_BYTES`] is
//! refused from its metadata before anything is read, and bad content (invalid UTF-8, a
//! character a name may not hold) is a [`DataError`] naming the file and the line.
//!
//! ```
//! use adamant_data::text::{eval_windows, random_windows, split_at_fraction, CharVocab};
//! use adamant_tensor::rng::seeded;
//!
//! let text = "to be or not to be";
//! let vocab = CharVocab::from_text(text);
//! assert_eq!(vocab.len(), 7); // ' ', b, e, n, o, r, t
//! let tokens = vocab.encode(text).unwrap();
//! assert_eq!(vocab.decode(&tokens), text);
//! let (train, val) = split_at_fraction(&tokens, 0.9);
//! assert_eq!((train.len(), val.len()), (16, 2));
//! let (x, y) = random_windows(train, 4, 5, &mut seeded(0));
//! assert_eq!((x.shape(), y.shape()), (&[4, 5][..], &[4, 5][..]));
//! let (x, y) = eval_windows(&tokens, 5);
//! assert_eq!(x.shape(), &[3, 5]); // (18 - 1) / 5 windows
//! assert_eq!(&x.data()[1..5], &y.data()[..4]); // targets are the inputs shifted by one
//! ```

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use adamant_tensor::rng::Rng;
use adamant_tensor::Ids;
use rand::Rng as _;

use crate::idx::MAX_DATA_BYTES;
use crate::DataError;

/// The largest text file read: the data cap of the other readers ([`MAX_DATA_BYTES`], 2 GiB).
/// Checked from the file's metadata before reading, and again while reading (a file that
/// grows, or a pipe, stops one byte past it).
pub const MAX_TEXT_BYTES: usize = MAX_DATA_BYTES;

/// Reads a whole UTF-8 text file (Python's `open(path).read()`, without newline translation).
///
/// # Errors
/// [`DataError::Io`] if it cannot be opened or read, [`DataError::Format`] if it is larger
/// than [`MAX_TEXT_BYTES`] or not valid UTF-8 (naming the line and byte offset of the first
/// bad byte). Every error names the file.
pub fn read_text(path: impl AsRef<Path>) -> Result<String, DataError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let too_large =
        |found: String| DataError::format(path, format!("at most {MAX_TEXT_BYTES} bytes of text"), found);
    let declared = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if declared > MAX_TEXT_BYTES as u64 {
        return Err(too_large(format!("{declared} bytes")));
    }
    let mut bytes = Vec::with_capacity(declared as usize);
    file.take(MAX_TEXT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| DataError::io(path, e))?;
    if bytes.len() > MAX_TEXT_BYTES {
        return Err(too_large(format!("more than {MAX_TEXT_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        DataError::format(path, "UTF-8 text", format!("an invalid byte on line {line} (byte offset {at})"))
    })
}

/// A character that a [`CharVocab`] does not hold, found by [`CharVocab::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownChar {
    /// The character.
    pub ch: char,
    /// Its position in the encoded text, counted in characters from 0.
    pub position: usize,
}

impl fmt::Display for UnknownChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "character {:?} (U+{:04X}) at position {} is not in the vocabulary",
            self.ch, self.ch as u32, self.position
        )
    }
}

impl std::error::Error for UnknownChar {}

/// A character vocabulary: sorted distinct characters, id `i` being the `i`-th smallest (as
/// `sorted(set(text))` in the PyTorch scripts, Karpathy's char-rnn and nanoGPT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharVocab {
    /// Sorted, distinct.
    chars: Vec<char>,
}

impl CharVocab {
    /// The vocabulary of a text: its distinct characters, sorted by code point.
    pub fn from_text(text: &str) -> CharVocab {
        CharVocab::from_chars(text.chars())
    }

    /// The vocabulary of some characters, sorted and deduplicated: `from_chars(".abc")` has
    /// `'.'` as id 0 since `'.'` sorts before the letters.
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> CharVocab {
        let mut chars: Vec<char> = chars.into_iter().collect();
        chars.sort_unstable();
        chars.dedup();
        CharVocab { chars }
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary is empty (built from empty text).
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `ch`, if it is in the vocabulary.
    pub fn id(&self, ch: char) -> Option<usize> {
        self.chars.binary_search(&ch).ok()
    }

    /// The ids of the characters of `text`.
    ///
    /// # Errors
    /// The first character not in the vocabulary, with its position.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, UnknownChar> {
        text.chars()
            .enumerate()
            .map(|(position, ch)| self.id(ch).ok_or(UnknownChar { ch, position }))
            .collect()
    }

    /// The text of `ids`.
    ///
    /// # Panics
    /// If an id is not below [`len`](CharVocab::len) (a programmer error, as an out-of-range
    /// embedding id).
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|&id| {
                *self.chars.get(id).unwrap_or_else(|| {
                    panic!("CharVocab::decode: id {id} out of range for {} characters", self.chars.len())
                })
            })
            .collect()
    }
}

/// The first `floor(fraction * len)` tokens and the rest (Python's
/// `n = int(fraction * len(data)); data[:n], data[n:]`): the split of `torch_char_gpt.py` with
/// `fraction = 0.9`.
///
/// # Panics
/// If `fraction` is not in `[0, 1]`.
pub fn split_at_fraction<T>(tokens: &[T], fraction: f64) -> (&[T], &[T]) {
    assert!((0.0..=1.0).contains(&fraction), "split_at_fraction: fraction must be in [0, 1], got {fraction}");
    tokens.split_at((fraction * tokens.len() as f64) as usize)
}

/// `batch` windows of `block + 1` tokens at uniformly random offsets, drawn from `rng`:
/// inputs `[batch, block]` and targets `[batch, block]`, the targets being the inputs shifted
/// by one token (next-token prediction).
///
/// Offsets are uniform on `0..len - block - 1`, as `torch.randint(len(train) - block - 1, ..)`
/// in `torch_char_gpt.py` (so the very last window is never drawn, as there).
///
/// # Panics
/// If `batch` or `block` is 0, or `tokens` has fewer than `block + 2` tokens.
pub fn random_windows(tokens: &[usize], batch: usize, block: usize, rng: &mut Rng) -> (Ids, Ids) {
    assert!(
        batch > 0 && block > 0,
        "random_windows: batch and block must be positive, got {batch} and {block}"
    );
    assert!(
        tokens.len() >= block + 2,
        "random_windows: {} tokens are too few for windows of {block} + 1 (need at least {})",
        tokens.len(),
        block + 2
    );
    let offsets = tokens.len() - block - 1;
    let mut inputs = Vec::with_capacity(batch * block);
    let mut targets = Vec::with_capacity(batch * block);
    for _ in 0..batch {
        let start = rng.random_range(0..offsets);
        inputs.extend_from_slice(&tokens[start..start + block]);
        targets.extend_from_slice(&tokens[start + 1..start + block + 1]);
    }
    (Ids::from_vec(inputs, &[batch, block]), Ids::from_vec(targets, &[batch, block]))
}

/// The consecutive windows of an evaluation: window `i` has inputs `tokens[block i ..
/// block i + block]` and targets one token later, for every `i` with `block i + block + 1 <=
/// len`, so every position but the first is predicted once (`val_loss` of
/// `torch_char_gpt.py`). Inputs and targets are `[n, block]` with `n = (len - 1) / block`.
///
/// # Panics
/// If `block` is 0 or `tokens` has fewer than `block + 1` tokens (no window).
pub fn eval_windows(tokens: &[usize], block: usize) -> (Ids, Ids) {
    assert!(block > 0, "eval_windows: block must be positive");
    let n = tokens.len().saturating_sub(1) / block;
    assert!(n > 0, "eval_windows: {} tokens hold no window of {block} + 1", tokens.len());
    let inputs = tokens[..n * block].to_vec();
    let targets = tokens[1..n * block + 1].to_vec();
    (Ids::from_vec(inputs, &[n, block]), Ids::from_vec(targets, &[n, block]))
}

/// A character corpus for next-token training: its vocabulary and the two splits, encoded.
#[derive(Clone, Debug)]
pub struct CharCorpus {
    /// The sorted distinct characters of the whole text.
    pub vocab: CharVocab,
    /// The first `floor(train_fraction * len)` tokens.
    pub train: Vec<usize>,
    /// The remaining tokens.
    pub val: Vec<usize>,
    /// The file read.
    pub source: PathBuf,
}

impl CharCorpus {
    /// Reads `path`, builds its vocabulary and splits its tokens: the first
    /// `floor(train_fraction * len)` train, the rest validate (0.9 in `torch_char_gpt.py`).
    ///
    /// # Errors
    /// As [`read_text`].
    ///
    /// # Panics
    /// If `train_fraction` is not in `[0, 1]`.
    pub fn read(path: impl AsRef<Path>, train_fraction: f64) -> Result<CharCorpus, DataError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let vocab = CharVocab::from_text(&text);
        let tokens = vocab.encode(&text).expect("every character of a text is in its own vocabulary");
        let (train, val) = split_at_fraction(&tokens, train_fraction);
        Ok(CharCorpus { train: train.to_vec(), val: val.to_vec(), vocab, source: path.to_path_buf() })
    }
}

/// The examples of a split of [`Names`]: contexts `[N, context]` and the id that follows each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameExamples {
    /// `[N, context]`: the previous `context` character ids, `'.'` (0) before a name's start.
    pub inputs: Ids,
    /// `[N]`: the next character id, `'.'` (0) after a name's last letter.
    pub targets: Vec<usize>,
}

impl NameExamples {
    /// The examples of `names` (each a sequence of ids in `1..vocab`, without `'.'`), as
    /// `examples()` of `torch_makemore.py`: a name of `L` letters gives `L + 1` examples.
    ///
    /// # Panics
    /// If `context` is 0.
    pub fn from_names(names: &[Vec<usize>], context: usize) -> NameExamples {
        assert!(context > 0, "NameExamples::from_names: context must be positive");
        let n: usize = names.iter().map(|w| w.len() + 1).sum();
        let mut inputs = Vec::with_capacity(n * context);
        let mut targets = Vec::with_capacity(n);
        let mut window = vec![0; context];
        for name in names {
            window.fill(0);
            for &id in name.iter().chain(std::iter::once(&0)) {
                inputs.extend_from_slice(&window);
                targets.push(id);
                window.rotate_left(1);
                window[context - 1] = id;
            }
        }
        NameExamples { inputs: Ids::from_vec(inputs, &[n, context]), targets }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The names dataset of makemore, split and turned into examples exactly as
/// `shared/bench/torch_makemore.py` does (see the module documentation).
#[derive(Clone, Debug)]
pub struct Names {
    /// `'.'` (id 0) then `a`..`z` (ids 1..26).
    pub vocab: CharVocab,
    /// The names, in file order.
    pub names: Vec<String>,
    /// Names `i` with `i % 10 < 8`.
    pub train: NameExamples,
    /// Names `i` with `i % 10 == 8`.
    pub dev: NameExamples,
    /// Names `i` with `i % 10 == 9`.
    pub test: NameExamples,
    /// The file read.
    pub source: PathBuf,
}

impl Names {
    /// The vocabulary every names dataset has (its `vocab` field): `'.'` then the 26 lowercase
    /// letters.
    pub fn alphabet() -> CharVocab {
        CharVocab::from_chars(std::iter::once('.').chain('a'..='z'))
    }

    /// Reads a names file (`first.txt`: one lowercase name a line) and builds the splits with
    /// `context` characters of context (3 in makemore).
    ///
    /// # Errors
    /// As [`read_text`], and [`DataError::Format`] naming the file and the line of the first
    /// name holding a character other than `a`..`z`.
    ///
    /// # Panics
    /// If `context` is 0.
    pub fn read(path: impl AsRef<Path>, context: usize) -> Result<Names, DataError> {
        let path = path.as_ref();
        Names::parse(&read_text(path)?, path, context)
    }

    /// [`Names::read`] on text already in memory; `source` is the file named in errors.
    ///
    /// # Errors
    /// [`DataError::Format`] naming `source` and the line of the first name holding a
    /// character other than `a`..`z`.
    pub fn parse(text: &str, source: impl AsRef<Path>, context: usize) -> Result<Names, DataError> {
        let source = source.as_ref();
        let vocab = Names::alphabet();
        let mut names = Vec::new();
        let mut encoded = Vec::new();
        // Python's str.split(): words separated by any run of whitespace.
        for (line, text) in text.lines().enumerate() {
            for word in text.split_whitespace() {
                match vocab.encode(word) {
                    Ok(ids) if !ids.contains(&0) => encoded.push(ids),
                    Ok(_) | Err(_) => {
                        let bad = word.chars().find(|&c| !c.is_ascii_lowercase()).unwrap_or('.');
                        return Err(DataError::format(
                            source,
                            "names of the letters a to z only",
                            format!("{bad:?} on line {} (in {word:?})", line + 1),
                        ));
                    }
                }
                names.push(word.to_string());
            }
        }
        let split = |keep: fn(usize) -> bool| -> NameExamples {
            let chosen: Vec<Vec<usize>> =
                encoded.iter().enumerate().filter(|(i, _)| keep(i % 10)).map(|(_, w)| w.clone()).collect();
            NameExamples::from_names(&chosen, context)
        };
        Ok(Names {
            train: split(|r| r < 8),
            dev: split(|r| r == 8),
            test: split(|r| r == 9),
            vocab,
            names,
            source: source.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::rng::seeded;

    #[test]
    fn vocab_is_sorted_distinct_and_round_trips() {
        let v = CharVocab::from_text("hello, world");
        assert_eq!(v.chars(), &[' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = v.encode("world").unwrap();
        assert_eq!(ids, [8, 6, 7, 5, 2]);
        assert_eq!(v.decode(&ids), "world");
        assert_eq!(v.id('z'), None);
        assert!(CharVocab::from_text("").is_empty());
    }

    #[test]
    fn encode_names_the_unknown_character_and_its_position() {
        let v = CharVocab::from_text("abc");
        let e = v.encode("abxc").unwrap_err();
        assert_eq!(e, UnknownChar { ch: 'x', position: 2 });
        assert_eq!(e.to_string(), "character 'x' (U+0078) at position 2 is not in the vocabulary");
        // Positions count characters, not bytes.
        assert_eq!(CharVocab::from_text("éa").encode("ééb").unwrap_err().position, 2);
    }

    #[test]
    #[should_panic(expected = "CharVocab::decode: id 3 out of range for 3 characters")]
    fn decode_rejects_out_of_range_ids() {
        CharVocab::from_text("abc").decode(&[0, 3]);
    }

    #[test]
    fn split_is_python_int_of_the_fraction() {
        let t: Vec<usize> = (0..1_158_419).collect();
        let (a, b) = split_at_fraction(&t, 0.9);
        // int(0.9 * 1158419) in Python.
        assert_eq!((a.len(), b.len()), (1_042_577, 115_842));
        assert_eq!(split_at_fraction(&t[..10], 0.9).0.len(), 9);
        assert_eq!(split_at_fraction(&t[..10], 1.0).1.len(), 0);
    }

    #[test]
    fn random_windows_are_shifted_slices_at_seeded_offsets() {
        let tokens: Vec<usize> = (0..50).collect();
        let (x, y) = random_windows(&tokens, 1000, 4, &mut seeded(3));
        assert_eq!(x.shape(), &[1000, 4]);
        let mut starts = std::collections::BTreeSet::new();
        for (xr, yr) in x.data().chunks(4).zip(y.data().chunks(4)) {
            // Consecutive tokens (here ids equal positions), targets one later.
            for j in 0..4 {
                assert_eq!(xr[j], xr[0] + j);
                assert_eq!(yr[j], xr[j] + 1);
            }
            starts.insert(xr[0]);
        }
        // Offsets 0..=44 (len - block - 1 = 45 of them), all seen in 1000 draws.
        assert_eq!(starts.iter().copied().collect::<Vec<_>>(), (0..45).collect::<Vec<_>>());
        // Same seed, same windows; another seed, others.
        assert_eq!(random_windows(&tokens, 1000, 4, &mut seeded(3)).0, x);
        assert_ne!(random_windows(&tokens, 1000, 4, &mut seeded(4)).0, x);
    }

    #[test]
    #[should_panic(expected = "random_windows: 5 tokens are too few for windows of 4 + 1")]
    fn random_windows_need_room() {
        random_windows(&[0; 5], 1, 4, &mut seeded(0));
    }

    #[test]
    fn eval_windows_cover_every_position_once() {
        let tokens: Vec<usize> = (0..11).collect();
        let (x, y) = eval_windows(&tokens, 3);
        assert_eq!(x.shape(), &[3, 3]);
        assert_eq!(x.data(), &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(y.data(), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // 10 tokens: (10 - 1) / 3 = 3 windows, the last target is token 9.
        assert_eq!(eval_windows(&tokens[..10], 3).1.data().last(), Some(&9));
    }

    #[test]
    fn name_examples_match_torch_makemore() {
        // "emma" gives ("...", e), ("..e", m), (".em", m), ("emm", a), ("mma", .).
        let v = Names::alphabet();
        assert_eq!(v.len(), 27);
        assert_eq!((v.id('.'), v.id('a'), v.id('z')), (Some(0), Some(1), Some(26)));
        let ex = NameExamples::from_names(&[v.encode("emma").unwrap(), v.encode("al").unwrap()], 3);
        assert_eq!(ex.inputs.shape(), &[8, 3]);
        let (e, m, a, l) = (5, 13, 1, 12);
        #[rustfmt::skip]
        assert_eq!(ex.inputs.data(), &[
            0, 0, 0,  0, 0, e,  0, e, m,  e, m, m,  m, m, a,
            0, 0, 0,  0, 0, a,  0, a, l,
        ]);
        assert_eq!(ex.targets, [e, m, m, a, 0, a, l, 0]);
    }

    #[test]
    fn names_split_by_index_mod_ten() {
        let text: String = (0..23).map(|i| format!("{}\n", "ab".repeat(i % 3 + 1))).collect();
        let names = Names::parse(&text, "names.txt", 2).unwrap();
        assert_eq!(names.names.len(), 23);
        let count = |keep: fn(usize) -> bool| -> usize {
            (0..23).filter(|&i| keep(i % 10)).map(|i| 2 * (i % 3 + 1) + 1).sum()
        };
        assert_eq!(names.train.len(), count(|r| r < 8));
        assert_eq!(names.dev.len(), count(|r| r == 8));
        assert_eq!(names.test.len(), count(|r| r == 9));
        // Name 8 ("ababab") is the first dev name.
        assert_eq!(&names.dev.targets[..7], &[1, 2, 1, 2, 1, 2, 0]);
        // Blank lines and spaces separate words as Python's split() does.
        assert_eq!(Names::parse("ab\n\n  cd ef\n", "n", 3).unwrap().names, ["ab", "cd", "ef"]);
    }

    #[test]
    fn names_errors_name_the_file_line_and_character() {
        let e = Names::parse("anna\nbob\nZoe\n", "dir/first.txt", 3).unwrap_err().to_string();
        assert_eq!(
            e,
            "dir/first.txt: expected names of the letters a to z only, found 'Z' on line 3 (in \"Zoe\")"
        );
        let e = Names::parse("a.b\n", "f", 3).unwrap_err().to_string();
        assert!(e.contains("'.' on line 1"), "{e}");
    }

    #[test]
    fn read_text_names_the_file() {
        let dir = std::env::temp_dir().join(format!("adamant-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.txt");
        let e = read_text(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&missing.display().to_string()), "{e}");
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, b"ok\nfine\nbad \xff here").unwrap();
        let e = read_text(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: expected UTF-8 text, found an invalid byte on line 3 (byte offset 12)",
                bad.display()
            )
        );
        let good = dir.join("good.txt");
        std::fs::write(&good, "héllo\r\n").unwrap();
        assert_eq!(read_text(&good).unwrap(), "héllo\r\n");
        let corpus = CharCorpus::read(&good, 0.5).unwrap();
        assert_eq!(corpus.vocab.len(), 6);
        assert_eq!((corpus.train.len(), corpus.val.len()), (3, 4));
        let e = Names::read(&bad, 3).unwrap_err().to_string();
        assert!(e.contains("bad.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
