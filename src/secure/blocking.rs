//! A secure link over a blocking `TcpStream`, as `Read + Write`: for tools and tests that talk
//! to a peer or tracker one request at a time (the benchmarks' clients, the test suite's fake
//! peers) rather than from a reactor. The same [`Link`] the reactor drives, so the bytes on
//! the wire are the same.

use super::{Link, Prologue, Role};
use crate::identity::{Identity, PeerId};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

pub struct SecureStream {
    tcp: TcpStream,
    link: Link,
    /// Plaintext opened but not read yet, from `start`.
    plain: Vec<u8>,
    start: usize,
    remote: PeerId,
}

impl SecureStream {
    /// Connects to `addr` with a key made for this connection and shakes hands (this build's
    /// wire version in the prologue).
    pub fn connect(addr: SocketAddr) -> io::Result<SecureStream> {
        let identity = Identity::generate().map_err(io::Error::other)?;
        SecureStream::handshake(TcpStream::connect(addr)?, Role::Initiator, &identity, None)
    }

    /// Runs the handshake on `tcp` as `role`; `expected`, if given, is the key the other side
    /// must prove.
    pub fn handshake(
        tcp: TcpStream,
        role: Role,
        identity: &Identity,
        expected: Option<PeerId>,
    ) -> io::Result<SecureStream> {
        SecureStream::handshake_with(tcp, role, identity, &super::our_prologue(), expected)
    }

    /// As [`handshake`](Self::handshake), with another prologue (a test of a downgrade).
    pub fn handshake_with(
        mut tcp: TcpStream,
        role: Role,
        identity: &Identity,
        prologue: &Prologue,
        expected: Option<PeerId>,
    ) -> io::Result<SecureStream> {
        // Records go out in several small writes (the last handshake message, then the first
        // frame): without it, Nagle's algorithm holds the second until the first is acked,
        // and delayed acks make that 40 ms.
        tcp.set_nodelay(true)?;
        let mut link = Link::new(role, identity, prologue, expected);
        let mut plain = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(bytes) = link.poll_transmit() {
                tcp.write_all(&bytes)?;
            }
            if let Some(remote) = link.remote() {
                return Ok(SecureStream {
                    tcp,
                    link,
                    plain,
                    start: 0,
                    remote,
                });
            }
            let n = tcp.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the secure handshake",
                ));
            }
            link.handle_input(&buf[..n], &mut plain)?;
        }
    }

    /// Who the handshake proved is on the other side.
    pub fn remote(&self) -> PeerId {
        self.remote
    }

    /// Seals `plaintext` as `write` would send it, without writing: for a caller that writes
    /// from another thread through a clone of the TCP stream (`get_ref().try_clone()`) while
    /// this one reads. The sealed bytes must go out, in order, before anything else is sent.
    pub fn seal(&mut self, plaintext: &[u8]) -> io::Result<Vec<u8>> {
        self.link.send(plaintext)?;
        Ok(self.link.poll_transmit().unwrap_or_default())
    }

    /// The TCP stream under the link (timeouts, shutdown, addresses).
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }
}

impl Read for SecureStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        while self.start == self.plain.len() {
            self.plain.clear();
            self.start = 0;
            let n = self.tcp.read(&mut buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.link.handle_input(&buf[..n], &mut self.plain)?;
            if let Some(bytes) = self.link.poll_transmit() {
                self.tcp.write_all(&bytes)?;
            }
        }
        let n = out.len().min(self.plain.len() - self.start);
        out[..n].copy_from_slice(&self.plain[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Write for SecureStream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.link.send(bytes)?;
        if let Some(sealed) = self.link.poll_transmit() {
            self.tcp.write_all(&sealed)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
