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
            decoder: FrameDecoder::new(),
            out: VecDeque::new(),
            out_head: 0,
            out_bytes: 0,
            bytes_read: 0,
            link: Box::new(link),
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
        let mut sealed = crate::wire::pooled_buffer(bytes.len() + records * per_record);
        let result = self.link.send_into(&bytes, &mut sealed);
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
        let fd = self.stream.as_raw_fd();
        if self.decoder.buffered() == 0 && self.decoder.capacity() > RELEASE_ABOVE {
            self.decoder.release_if_empty();
        }
        let (link, decoder) = (&mut self.link, &mut self.decoder);
        let result = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = read_fd(fd, scratch.as_mut_ptr(), scratch.len())?;
            // Records decrypt straight into the decoder. A record's plaintext is shorter than
            // its bytes, so `n` is room enough unless this read completes a record begun by an
            // earlier one (then the buffer grows).
            decoder.append_with(n, |plain| link.handle_input(&scratch[..n], plain))?;
            Ok(n)
        });
        self.take_link_output();
        if let Ok(n) = result {
            self.bytes_read += n as u64;
        }
        result
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
