//! Records: how Noise messages travel on a TCP stream. Each is a 2-byte big-endian length `n`
//! followed by `n` bytes, one whole Noise message (handshake or transport). Two bytes suffice:
//! Noise caps a message at 65,535 bytes, so any `n` we can read is one Noise allows, and a
//! peer cannot make us buffer more than 65,537 bytes for a record.

use super::LinkError;

pub const HEADER_LEN: usize = 2;

/// Appends the length of a record of `len` bytes (`len` ≤ 65,535).
pub fn push_header(out: &mut Vec<u8>, len: usize) {
    let len = u16::try_from(len).expect("callers never build a record above Noise's 65,535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
}

/// A record and the bytes after it.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// The first record of `bytes` (without its header) and what follows it; `Ok(None)` while it
/// is incomplete. `min_len` is the shortest record the caller can use; shorter ones are refused.
pub fn split(bytes: &[u8], min_len: usize) -> Result<Option<Split<'_>>, LinkError> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes(*header));
    if len < min_len.max(1) {
        return Err(LinkError::BadRecord(len));
    }
    if bytes.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let (record, rest) = bytes[HEADER_LEN..].split_at(len);
    Ok(Some((record, rest)))
}

/// Splits an incoming byte stream into records; keeps an incomplete one for the next bytes.
#[derive(Default)]
pub struct RecordReader {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out; dropped before the next append.
    consumed: usize,
}

impl RecordReader {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record (without its header), `Ok(None)` while it is incomplete.
    /// `min_len` is the shortest record the caller can use; shorter ones are refused.
    pub fn next_record(&mut self, min_len: usize) -> Result<Option<&[u8]>, LinkError> {
        let pending = &self.buf[self.consumed..];
        let Some((record, rest)) = split(pending, min_len)? else {
            return Ok(None);
        };
        self.consumed = self.buf.len() - rest.len();
        let start = self.consumed - record.len();
        Ok(Some(&self.buf[start..self.consumed]))
    }

    /// How many more bytes complete the pending record, header first (at least 1, or 0 when
    /// nothing is pending). Lets a caller complete it and read the rest straight from its own
    /// buffer.
    pub fn wanted(&self) -> usize {
        let pending = &self.buf[self.consumed..];
        match pending.first_chunk::<HEADER_LEN>() {
            None if pending.is_empty() => 0,
            None => HEADER_LEN - pending.len(),
            Some(h) => (HEADER_LEN + usize::from(u16::from_be_bytes(*h)))
                .saturating_sub(pending.len())
                .max(1),
        }
    }

    /// Everything received and not handed out as a record.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.consumed);
        self.buf = Vec::new();
        self.consumed = 0;
        rest
    }

    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_and_join_across_pushes() {
        let mut stream = Vec::new();
        for len in [1usize, 5, 300, 65535] {
            push_header(&mut stream, len);
            stream.extend((0..len).map(|i| (i + len) as u8));
        }
        for step in [1, 2, 3, 7, 1000, stream.len()] {
            let mut r = RecordReader::default();
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                r.push(piece);
                while let Some(rec) = r.next_record(1).unwrap() {
                    got.push(rec.to_vec());
                }
            }
            let lens: Vec<usize> = got.iter().map(Vec::len).collect();
            assert_eq!(lens, [1, 5, 300, 65535], "step {step}");
            assert_eq!(got[2][0], 300u16 as u8);
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn wanted_counts_what_completes_the_pending_record() {
        let mut r = RecordReader::default();
        assert_eq!(r.wanted(), 0);
        r.push(&[0]);
        assert_eq!(r.wanted(), 1);
        r.push(&[3, 9]);
        assert_eq!(r.wanted(), 2);
        r.push(&[9, 9]);
        assert_eq!(r.next_record(1).unwrap(), Some(&[9u8, 9, 9][..]));
        assert_eq!(r.wanted(), 0);
        assert_eq!(
            split(&[0, 2, 1, 2, 3], 1).unwrap(),
            Some((&[1u8, 2][..], &[3u8][..]))
        );
        assert_eq!(split(&[0, 2, 1], 1).unwrap(), None);
    }

    #[test]
    fn short_records_are_refused_and_incomplete_ones_wait() {
        let mut r = RecordReader::default();
        r.push(&[0]);
        assert_eq!(r.next_record(1), Ok(None));
        r.push(&[0]);
        assert_eq!(r.next_record(1), Err(LinkError::BadRecord(0)));
        let mut r = RecordReader::default();
        r.push(&[0, 16]);
        assert_eq!(r.next_record(17), Err(LinkError::BadRecord(16)));
        let mut r = RecordReader::default();
        r.push(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(r.next_record(17), Ok(None));
        assert_eq!(r.take_rest(), [0xff, 0xff, 1, 2, 3]);
    }
}
