//! The transport of a secure link: the plaintext byte stream (our frames, back to back) cut
//! into records of at most [`MAX_RECORD_PLAINTEXT`] bytes, each sealed as one Noise transport
//! message (ciphertext and 16-byte tag) behind its 2-byte length.
//!
//! Records do not follow frame boundaries: a 4 MiB chunk frame is 65 records, and one record
//! may end one frame and start the next. The frame decoder above reassembles frames from the
//! plaintext exactly as it would from a plain TCP stream, so the frame layer does not change.
//!
//! Nothing is handed up before its record's tag checked: a record is decrypted whole into the
//! end of the caller's buffer, and on failure that tail is cut off again and the transport is
//! dead (every later call fails), since a Noise receiver cannot skip a message.

use super::record::{self, RecordReader};
use super::{LinkError, MAX_RECORD_PLAINTEXT, PlaintextSink, TAG_LEN};

/// The shortest transport record: a tag and one byte. We never send empty records, and
/// refusing them keeps a peer from making us spin on records that carry nothing.
const MIN_RECORD: usize = TAG_LEN + 1;

/// Decrypts one record onto the end of where `sink` says; on failure nothing of it stays there.
fn decrypt(
    noise: &mut snow::TransportState,
    message: &[u8],
    sink: &mut impl PlaintextSink,
) -> Result<(), LinkError> {
    let len = message.len() - TAG_LEN;
    let plaintext = sink.room(len);
    let start = plaintext.len();
    plaintext.resize(start + len, 0);
    match noise.read_message(message, &mut plaintext[start..]) {
        Ok(n) => {
            plaintext.truncate(start + n);
            sink.filled();
            Ok(())
        }
        Err(_) => {
            plaintext.truncate(start);
            Err(LinkError::Decrypt)
        }
    }
}

pub struct Transport {
    noise: snow::TransportState,
    reader: RecordReader,
    failed: bool,
}

impl Transport {
    pub(super) fn new(noise: snow::TransportState) -> Transport {
        Transport {
            noise,
            reader: RecordReader::default(),
            failed: false,
        }
    }

    /// Appends to `out` the records that carry `plaintext` (none for empty plaintext).
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
        if self.failed {
            return Err(LinkError::Failed);
        }
        let records = plaintext.len().div_ceil(MAX_RECORD_PLAINTEXT);
        out.reserve(plaintext.len() + records * (record::HEADER_LEN + TAG_LEN));
        for piece in plaintext.chunks(MAX_RECORD_PLAINTEXT) {
            let len = piece.len() + TAG_LEN;
            record::push_header(out, len);
            let start = out.len();
            out.resize(start + len, 0);
            if let Err(e) = self.noise.write_message(piece, &mut out[start..]) {
                self.failed = true;
                return Err(LinkError::Encrypt(e.to_string()));
            }
        }
        Ok(())
    }

    /// Feeds bytes from the connection; appends to `plaintext` what every record completed by
    /// them carries, once its tag checked. An incomplete record waits for more bytes. An error
    /// ends the link, and `plaintext` then holds only what verified before it.
    pub fn open(
        &mut self,
        bytes: &[u8],
        plaintext: &mut impl PlaintextSink,
    ) -> Result<(), LinkError> {
        if self.failed {
            return Err(LinkError::Failed);
        }
        let result = self.open_records(bytes, plaintext);
        self.failed = result.is_err();
        result
    }

    /// Whole records are opened straight from `bytes`; only a record cut by the end of `bytes`
    /// is copied into our buffer, and completed from the next bytes.
    fn open_records(
        &mut self,
        mut bytes: &[u8],
        plaintext: &mut impl PlaintextSink,
    ) -> Result<(), LinkError> {
        while self.reader.buffered() > 0 && !bytes.is_empty() {
            let (head, rest) = bytes.split_at(self.reader.wanted().min(bytes.len()));
            self.reader.push(head);
            bytes = rest;
            if let Some(message) = self.reader.next_record(MIN_RECORD)? {
                decrypt(&mut self.noise, message, plaintext)?;
            }
        }
        while let Some((message, rest)) = record::split(bytes, MIN_RECORD)? {
            decrypt(&mut self.noise, message, plaintext)?;
            bytes = rest;
        }
        self.reader.push(bytes);
        Ok(())
    }
    /// Bytes received that do not make a whole record yet.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }
}
