//! One TCP connection as the reactor sees it: a socket, the frame decoder for what comes in and
//! a queue of encoded frames going out.

use crate::wire::FrameDecoder;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use super::ConnectTag;

/// Stop reading from a connection while this much is queued for it: a peer that asks for chunks
/// but does not read them must not make us buffer without bound.
pub const OUT_HIGH_WATER: usize = 8 * 1024 * 1024;
/// Resume reading once the queue has drained below this.
pub const OUT_LOW_WATER: usize = 2 * 1024 * 1024;
/// Smallest read we issue; larger when a big frame is being assembled.
const MIN_READ: usize = 64 * 1024;

pub enum Phase {
    /// Non-blocking connect in progress; completes on the first writable event.
    Connecting {
        tag: ConnectTag,
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
}

pub enum ReadOutcome {
    /// Read until WouldBlock; nothing more for now.
    Drained,
    /// The read budget ran out with data possibly still waiting.
    BudgetSpent,
    /// The remote closed its side.
    Eof,
}

impl Conn {
    pub fn new(stream: TcpStream, generation: u64, remote: SocketAddr, phase: Phase) -> Conn {
        Conn {
            stream,
            generation,
            remote,
            phase,
            decoder: FrameDecoder::new(),
            out: VecDeque::new(),
            out_head: 0,
            out_bytes: 0,
        }
    }

    pub fn queued(&self) -> usize {
        self.out_bytes
    }

    pub fn queue(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out_bytes += bytes.len();
            self.out.push_back(bytes);
        }
    }

    /// Whether we should take more input: not while closing or while our replies pile up.
    pub fn read_allowed(&self) -> bool {
        matches!(self.phase, Phase::Open) && self.out_bytes < OUT_HIGH_WATER
    }

    /// Reads into the frame decoder until WouldBlock, EOF, or `budget` bytes.
    pub fn read_some(&mut self, budget: usize) -> io::Result<ReadOutcome> {
        let mut total = 0;
        while total < budget {
            let want = self
                .decoder
                .wanted()
                .clamp(MIN_READ, crate::wire::MAX_FRAME_LEN + 4);
            let space = self.decoder.read_space(want);
            match self.stream.read(space) {
                Ok(0) => {
                    self.decoder.filled(want, 0);
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.decoder.filled(want, n);
                    total += n;
                }
                Err(e) => {
                    self.decoder.filled(want, 0);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(ReadOutcome::BudgetSpent)
    }

    /// Writes queued frames until the queue is empty or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let mut slices: [IoSlice<'_>; 16] = [IoSlice::new(&[]); 16];
            let mut count = 0;
            for (i, buf) in self.out.iter().take(16).enumerate() {
                let start = if i == 0 { self.out_head } else { 0 };
                slices[i] = IoSlice::new(&buf[start..]);
                count += 1;
            }
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    self.out_bytes -= n;
                    while n > 0 {
                        let front_left = self.out[0].len() - self.out_head;
                        if n >= front_left {
                            n -= front_left;
                            self.out.pop_front();
                            self.out_head = 0;
                        } else {
                            self.out_head += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
