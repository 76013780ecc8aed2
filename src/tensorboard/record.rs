//! The framing of an event file (TFRecord): each record is
//!
//! ```text
//! u64 little-endian  length of the data
//! u32 little-endian  masked CRC-32C of those 8 bytes
//! [u8; length]       the data (an encoded Event)
//! u32 little-endian  masked CRC-32C of the data
//! ```
//!
//! A process killed while writing leaves at most one torn record at the end, which
//! [`Records`] reports as the end of the readable part.

use std::io::{self, Read, Write};

/// Records longer than this are refused when reading (a corrupt length must not allocate
/// gigabytes); adamant's largest, a histogram of ~1,500 buckets, is under 30 KB.
pub const MAX_RECORD: u64 = 64 << 20;

/// TFRecord's CRC mask: the CRC rotated right by 15 bits plus a constant, so that a CRC of
/// data holding CRCs is not trivially related to them.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Writes one record holding `data`.
pub fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    let mut frame = Vec::with_capacity(data.len() + 16);
    frame.extend_from_slice(&len);
    frame.extend_from_slice(&masked_crc(&len).to_le_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(&masked_crc(data).to_le_bytes());
    // One write per record: a kill between writes leaves whole records before the last.
    out.write_all(&frame)
}

/// Why reading records stopped before the end of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The input ends inside a record (a writer killed mid-record).
    Truncated,
    /// A length or data CRC does not match: the bytes are not an event file's (or are damaged).
    Checksum,
    /// A record claims more than [`MAX_RECORD`] bytes.
    TooLong(u64),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "the file ends inside a record"),
            RecordError::Checksum => write!(f, "a record's checksum does not match"),
            RecordError::TooLong(n) => write!(f, "a record claims {n} bytes (at most {MAX_RECORD})"),
        }
    }
}

/// Reads records one by one: each item is `(offset of the record, its data)`; the iteration
/// ends at the end of the input or with one error, after which it yields nothing.
pub struct Records<R> {
    input: R,
    offset: u64,
    done: bool,
}

impl<R: Read> Records<R> {
    /// Records of `input`, which starts with a record.
    pub fn new(input: R) -> Records<R> {
        Records { input, offset: 0, done: false }
    }

    /// Reads exactly `buf.len()` bytes: `Ok(false)` at a clean end (nothing read), an error if
    /// the input ends part-way.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, RecordError> {
        let mut read = 0;
        while read < buf.len() {
            match self.input.read(&mut buf[read..]) {
                Ok(0) => return if read == 0 { Ok(false) } else { Err(RecordError::Truncated) },
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(RecordError::Truncated),
            }
        }
        Ok(true)
    }

    fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordError> {
        let mut header = [0u8; 12];
        if !self.fill(&mut header)? {
            return Ok(None);
        }
        let (len_bytes, len_crc) = header.split_at(8);
        if masked_crc(len_bytes).to_le_bytes() != len_crc {
            return Err(RecordError::Checksum);
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        if len > MAX_RECORD {
            return Err(RecordError::TooLong(len));
        }
        let mut data = vec![0u8; len as usize + 4];
        if !self.fill(&mut data)? {
            return Err(RecordError::Truncated);
        }
        let crc = data.split_off(len as usize);
        if masked_crc(&data).to_le_bytes()[..] != crc[..] {
            return Err(RecordError::Checksum);
        }
        Ok(Some(data))
    }
}

impl<R: Read> Iterator for Records<R> {
    type Item = Result<(u64, Vec<u8>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.offset;
        match self.next_record() {
            Ok(Some(data)) => {
                self.offset += data.len() as u64 + 16;
                Some(Ok((start, data)))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFRecord's masked CRC of a known input, as TensorFlow's `crc32c::Mask` computes it:
    /// CRC-32C("123456789") = 0xe3069283 (the standard check value), rotated and offset.
    #[test]
    fn the_mask_is_tfrecords() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_readable_part() {
        let mut file = Vec::new();
        for data in [&b"first"[..], b"", b"third record"] {
            write_record(&mut file, data).unwrap();
        }
        let read: Vec<_> = Records::new(&file[..]).map(Result::unwrap).collect();
        assert_eq!(read, vec![(0, b"first".to_vec()), (21, vec![]), (37, b"third record".to_vec())]);
        // Every cut inside the last record leaves the first two readable, then one error.
        for cut in 38..file.len() {
            let items: Vec<_> = Records::new(&file[..cut]).collect();
            assert_eq!(items.len(), 3, "cut at {cut}");
            assert_eq!(items[2], Err(RecordError::Truncated), "cut at {cut}");
        }
        // A flipped bit in the data or the length is caught by its CRC.
        let mut bad = file.clone();
        bad[14] ^= 1;
        assert_eq!(Records::new(&bad[..]).next(), Some(Err(RecordError::Checksum)));
        let mut bad = file.clone();
        bad[0] ^= 1;
        assert_eq!(Records::new(&bad[..]).next(), Some(Err(RecordError::Checksum)));
    }

    #[test]
    fn a_huge_length_is_refused_before_allocating() {
        let len = u64::MAX.to_le_bytes();
        let mut file = len.to_vec();
        file.extend_from_slice(&masked_crc(&len).to_le_bytes());
        assert_eq!(Records::new(&file[..]).next(), Some(Err(RecordError::TooLong(u64::MAX))));
    }
}
