//! One TCP connection as the reactor sees it: a socket, the secure link under the frames
//! (every byte on the socket goes through it, both ways: there is no plaintext mode), the
//! frame decoder for what comes in and a queue of sealed bytes going out. Sent buffers go back
//! to the chunk buffer pool, and a dropped connection frees its queue at once.

use crate::identity::PeerId;
use crate::secure::Link;
use crate::wire::FrameDecoder;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::ConnectTag;

/// The read buffer shared by a thread's connections: four records and their headers, so most
/// records arrive whole in one read and are opened from it without being copied first.
const MIN_READ: usize = 4 * (64 * 1024 + 2);
/// Sent frames at least this large go back to the chunk buffer pool.
const RECYCLE_FROM: usize = 64 * 1024;
/// A decoder buffer larger than this (after a large manifest, say) is freed once it is empty.
const RELEASE_ABOVE: usize = 1024 * 1024;

thread_local! {
    /// The read buffer shared by every connection of this thread's reactor (see
    /// `Conn::read_once`).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MIN_READ]);
}

/// `read(2)` into raw memory, which may be uninitialized: the kernel only writes to it.
fn read_fd(fd: std::os::fd::RawFd, buf: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: `buf` points to `len` writable bytes (the callers pass a slice's pointer and
    // length); read(2) writes at most `len` bytes there and never reads them.
    let n = unsafe { libc::read(fd, buf.cast(), len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub enum Phase {
    /// Non-blocking connect in progress; completes on the first writable event.
    Connecting {
        tag: ConnectTag,
        deadline: Instant,
    },
    /// TCP is up and the secure handshake runs; the node has not heard of the connection yet
    /// (it does once the handshake proved the other side's key). `tag`: ours, dialled with it.
    Securing {
        tag: Option<ConnectTag>,
        deadline: Instant,
    },
    Open,
    /// The node closed it; flush what is queued, then drop (by `deadline` at the latest).
    Closing {
        deadline: Instant,
    },
}

pub struct Conn {
    pub stream: TcpStream,
    pub generation: u64,
    pub remote: SocketAddr,
    pub phase: Phase,
    pub decoder: FrameDecoder,
    out: VecDeque<Vec<u8>>,
    /// Bytes of `out.front()` already written.
    out_head: usize,
    out_bytes: usize,
    /// Bytes read from the socket so far (what the rate limiter charges).
    pub bytes_read: u64,
    /// The secure link under the frames: socket bytes go through it both ways.
    link: Box<Link>,
    /// Socket bytes read but not given to the link yet: while holding (below), or what came
    /// behind the relay's last frame, for the link that replaced it (`restart`).
    raw: Vec<u8>,
    /// Holding (`Action::Hold`): records are opened one at a time and reading stops at the
    /// first whole frame, so the bytes behind a relay's `RelayStart` (the other side's fresh
    /// handshake) are never taken for records of this link.
    hold: bool,
    /// Parked (`Action::Park`): the socket is not read at all until `restart`.
    parked: bool,
    /// Spliced to another connection (`splice.rs`): bytes are copied to it unread.
    pub splice: Option<super::splice::Splice>,
}

pub enum ReadOutcome {
    /// A whole frame (or a frame error) is buffered: hand it over, then read on. Carries the
    /// bytes read by this call.
    FrameReady(usize),
    /// Read until WouldBlock; nothing more for now.
    Drained,
    /// The read budget ran out with data possibly still waiting.
    BudgetSpent,
    /// The remote closed its side.
    Eof,
}

impl Conn {
    /// A connection whose bytes go through `link`; what the link has to send at once (the
    /// initiator's first handshake message) is queued.
    pub fn new(
        stream: TcpStream,
        generation: u64,
        remote: SocketAddr,
        phase: Phase,
        link: Link,
    ) -> Conn {
        let mut conn = Conn {
            stream,
            generation,
            remote,
            phase,
            decoder: FrameDecoder::with_whole_chunks(),
            out: VecDeque::new(),
            out_head: 0,
            out_bytes: 0,
            bytes_read: 0,
            link: Box::new(link),
            raw: Vec::new(),
            hold: false,
            parked: false,
            splice: None,
        };
        conn.take_link_output();
        conn
    }

    /// Who the handshake proved is on the other side, once it has.
    pub fn remote_peer(&self) -> Option<PeerId> {
        self.link.remote()
    }

    /// Moves what the link has for the socket into the output queue.
    fn take_link_output(&mut self) {
        if let Some(bytes) = self.link.poll_transmit() {
            self.out_bytes += bytes.len();
            self.out.push_back(bytes);
        }
    }

    pub fn queued(&self) -> usize {
        self.out_bytes
    }

    /// Queues one encoded frame, sealed (the node only sends on connections whose handshake
    /// is done). `queued()` grows by the bytes that will go on the wire, records and tags
    /// included. An error means the link failed: close it.
    pub fn queue(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        // Sealed into a recycled buffer (a chunk frame's records are as big as the frame): a
        // fresh allocation per frame cost page faults on every chunk sent.
        let records = bytes.len().div_ceil(crate::secure::MAX_RECORD_PLAINTEXT);
        let per_record = crate::secure::record::HEADER_LEN + crate::secure::TAG_LEN;
        let mut sealed = crate::wire::pooled_buffer(bytes.len() + (records + 1) * per_record);
        // A chunk frame's head goes in a record of its own, so the data starts a record and the
        // receiver's decoder can open it straight into the chunk's buffer (`FrameDecoder`,
        // whole chunks); 18 bytes of record on 256 KiB.
        let head = crate::wire::chunk_head_cut(&bytes);
        let result = match head {
            0 => self.link.send_into(&bytes, &mut sealed),
            _ => self
                .link
                .send_into(&bytes[..head], &mut sealed)
                .and_then(|()| self.link.send_into(&bytes[head..], &mut sealed)),
        };
        if bytes.capacity() >= RECYCLE_FROM {
            crate::wire::recycle_chunk_buffer(bytes);
        }
        result?;
        if !sealed.is_empty() {
            self.out_bytes += sealed.len();
            self.out.push_back(sealed);
        }
        self.take_link_output();
        Ok(())
    }

    /// Whether its frames are for the node: not while connecting or closing. (How much output
    /// may pile up before we stop taking frames is the reactor's `OutputBudget`.)
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Reads into the frame decoder until a whole frame is buffered, WouldBlock, EOF, or `budget`
    /// bytes. Stopping at each whole frame lets the caller hand it over while its bytes are still
    /// in the CPU cache (and keeps the buffer at one frame instead of `budget` bytes).
    pub fn read_some(&mut self, budget: usize) -> io::Result<ReadOutcome> {
        let mut total = 0;
        while total < budget {
            if self.decoder.ready() {
                return Ok(ReadOutcome::FrameReady(total));
            }
            match self.read_once() {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => total += n,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                },
            }
        }
        Ok(if self.decoder.ready() {
            ReadOutcome::FrameReady(total)
        } else {
            ReadOutcome::BudgetSpent
        })
    }

    /// One `read(2)` into the buffer shared by every connection of the thread (ten thousand
    /// quiet connections cost no read buffers); what verifies goes into the decoder, and the
    /// link's answers (handshake messages, frames it held until its keys existed) into the
    /// output queue. A record that fails is an `InvalidData` error carrying the `LinkError`.
    fn read_once(&mut self) -> io::Result<usize> {
        if self.parked {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.hold || !self.raw.is_empty() {
            return self.read_held();
        }
        let fd = self.stream.as_raw_fd();
        if self.decoder.buffered() == 0 && self.decoder.capacity() > RELEASE_ABOVE {
            self.decoder.release_if_empty();
        }
        let (link, decoder) = (&mut self.link, &mut self.decoder);
        let result = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = read_fd(fd, scratch.as_mut_ptr(), scratch.len())?;
            // Records decrypt straight into the decoder, each where it says (a large chunk's
            // data into the chunk's own buffer).
            link.handle_input(&scratch[..n], decoder)?;
            Ok(n)
        });
        self.take_link_output();
        if let Ok(n) = result {
            self.bytes_read += n as u64;
        }
        result
    }

    /// Parks (see `parked`) from now until `restart`.
    pub fn park(&mut self) {
        self.parked = true;
    }

    /// Holds (see `hold`) from now until `restart`.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// A fresh secure link on the same TCP stream (after a relay's `RelayStart`): the bytes
    /// read behind the old link's last frame go to the new one, frames buffered after that
    /// frame (none, from an honest relay) are dropped, and the new link's first handshake
    /// message (an initiator's) is queued.
    pub fn restart(&mut self, link: Link) {
        *self.link = link;
        self.decoder = FrameDecoder::with_whole_chunks();
        self.hold = false;
        self.parked = false;
        self.take_link_output();
    }

    /// Stops using the link for good (the connection is spliced): what it or the decoder
    /// still held is dropped, and what was queued, sealed, still goes out first.
    pub fn start_splice(&mut self, splice: super::splice::Splice) {
        self.decoder = FrameDecoder::with_whole_chunks();
        self.raw = Vec::new();
        self.hold = false;
        self.splice = Some(splice);
    }

    /// Queues bytes as they are, not through the link (a spliced connection's traffic).
    pub fn queue_raw(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out_bytes += bytes.len();
            self.out.push_back(bytes);
        }
    }

    /// One `read(2)` of at most `max` raw bytes appended to `buf` (a spliced connection's
    /// traffic), into its spare room: nothing is zeroed first.
    pub fn read_raw(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        let n = read_fd(self.stream.as_raw_fd(), spare.as_mut_ptr().cast(), len)?;
        // SAFETY: read(2) wrote `n` <= `len` bytes right after the vector's length, within
        // its capacity (`reserve` above).
        unsafe { buf.set_len(buf.len() + n) };
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// `read_once` while holding or with bytes left from the old link: a whole record held
    /// is opened (only one while holding), otherwise the socket is read into `raw`.
    fn read_held(&mut self) -> io::Result<usize> {
        let take = if self.hold {
            whole_record(&self.raw)
        } else {
            Some(self.raw.len())
        };
        if let Some(len) = take.filter(|&n| n > 0) {
            let bytes: Vec<u8> = self.raw.drain(..len).collect();
            let (link, decoder) = (&mut self.link, &mut self.decoder);
            let opened = link.handle_input(&bytes, decoder);
            self.take_link_output();
            opened?;
            return Ok(len);
        }
        let mut buf = [0u8; 16 * 1024];
        let n = read_fd(self.stream.as_raw_fd(), buf.as_mut_ptr(), buf.len())?;
        self.bytes_read += n as u64;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Writes queued frames until the queue is empty or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_at_most(usize::MAX).map(|_| ())
    }

    /// Writes queued frames until the queue is empty, the socket is full or `max` bytes are
    /// written. Returns the bytes written.
    pub fn flush_at_most(&mut self, max: usize) -> io::Result<usize> {
        let mut written = 0;
        while !self.out.is_empty() && written < max {
            let mut slices: [IoSlice<'_>; 16] = [IoSlice::new(&[]); 16];
            let mut count = 0;
            let mut room = max - written;
            for (i, buf) in self.out.iter().take(16).enumerate() {
                let start = if i == 0 { self.out_head } else { 0 };
                let len = (buf.len() - start).min(room);
                slices[i] = IoSlice::new(&buf[start..start + len]);
                count += 1;
                room -= len;
                if room == 0 {
                    break;
                }
            }
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    written += n;
                    self.out_bytes -= n;
                    while n > 0 {
                        let front_left = self.out[0].len() - self.out_head;
                        if n >= front_left {
                            n -= front_left;
                            if let Some(sent) = self.out.pop_front()
                                && sent.capacity() >= RECYCLE_FROM
                            {
                                // A chunk frame: its buffer serves the next one.
                                crate::wire::recycle_chunk_buffer(sent);
                            }
                            self.out_head = 0;
                        } else {
                            self.out_head += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }
}

/// The length of the whole record at the head of `bytes` (2-byte big-endian length, then
/// that many bytes), if it is all there.
fn whole_record(bytes: &[u8]) -> Option<usize> {
    let header = bytes.first_chunk::<{ crate::secure::record::HEADER_LEN }>()?;
    let len = crate::secure::record::HEADER_LEN + u16::from_be_bytes(*header) as usize;
    (bytes.len() >= len).then_some(len)
}

/// The reactor's decoder takes opened records one at a time (see `FrameDecoder::room`).
impl crate::secure::PlaintextSink for FrameDecoder {
    fn room(&mut self, len: usize) -> &mut Vec<u8> {
        FrameDecoder::room(self, len)
    }
    fn filled(&mut self) {
        FrameDecoder::filled(self)
    }
}
