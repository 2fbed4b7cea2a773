//! UDP for the reactor (LAN discovery, port mapping): datagram sockets registered under tokens
//! of their own, each known to the driver by its [`UdpSocketId`] (the order it was added in).
//! A readable socket is read until `WouldBlock` (at most [`MAX_PER_EVENT`] datagrams per event,
//! so a flood cannot starve the TCP connections); every datagram goes to the driver whole.
//! Sending is best effort: a datagram that cannot leave right now is dropped, as UDP would.

use super::Driver;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

/// Room for one datagram; a longer one arrives truncated (and then fails to decode).
const RECV_BUF: usize = 2048;
/// Datagrams read from one socket per readable event. The rest stay queued in the kernel; the
/// next datagram to arrive raises a new event.
const MAX_PER_EVENT: usize = 256;
/// Most UDP sockets one reactor holds.
pub(super) const MAX_UDP: usize = 8;

/// Which of the reactor's UDP sockets: the one `Reactor::add_udp` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpSocketId(pub usize);

pub(super) struct UdpSockets {
    sockets: Vec<UdpSocket>,
    first_token: usize,
    buf: Vec<u8>,
}

impl UdpSockets {
    pub(super) fn new(first_token: usize) -> UdpSockets {
        UdpSockets {
            sockets: Vec::new(),
            first_token,
            buf: vec![0; RECV_BUF],
        }
    }

    pub(super) fn add(
        &mut self,
        registry: &Registry,
        mut socket: UdpSocket,
    ) -> io::Result<UdpSocketId> {
        if self.sockets.len() >= MAX_UDP {
            return Err(io::Error::other("too many UDP sockets"));
        }
        let id = UdpSocketId(self.sockets.len());
        let token = Token(self.first_token + id.0);
        registry.register(&mut socket, token, Interest::READABLE)?;
        self.sockets.push(socket);
        Ok(id)
    }

    /// Whether `token` is one of ours.
    pub(super) fn owns(&self, token: Token) -> bool {
        (self.first_token..self.first_token + MAX_UDP).contains(&token.0)
    }

    pub(super) fn on_readable(&mut self, token: Token, driver: &mut impl Driver) {
        let id = UdpSocketId(token.0 - self.first_token);
        let Some(socket) = self.sockets.get(id.0) else {
            return;
        };
        for _ in 0..MAX_PER_EVENT {
            match socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    driver.handle_datagram_on(id, from, &self.buf[..n], Instant::now())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: drained. Other errors (an ICMP error queued on the socket) are
                // per datagram: nothing to retry.
                Err(_) => return,
            }
        }
    }

    /// Sends from the socket `id`; dropped if there is none or the send fails.
    pub(super) fn send(&self, id: UdpSocketId, to: SocketAddr, bytes: &[u8]) {
        if let Some(socket) = self.sockets.get(id.0) {
            let _ = socket.send_to(bytes, to);
        }
    }
}

/// A non-blocking UDP socket for talking to one router (port mapping): bound to `local` (port
/// 0: any), no multicast.
pub fn unicast_socket(local: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(local)?;
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket))
}

/// The source address the kernel gives our datagrams from `local` to `to` (the local address
/// of a UDP socket bound to `local` and connected to `to`; connecting sends nothing). PCP
/// writes it into its requests: the gateway checks it against where they come from.
pub fn local_ip_towards(local: SocketAddr, to: SocketAddr) -> io::Result<IpAddr> {
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(to)?;
    Ok(socket.local_addr()?.ip())
}

/// A non-blocking UDP socket that is a member of the multicast `group` on the interface with
/// address `iface` (`0.0.0.0`: the kernel's choice), bound to the group's address and port
/// with `SO_REUSEADDR` so several processes on one host can share it, sending its own
/// multicasts out of that interface with a TTL of 1 (never past a router) and looping them
/// back to the other members on this host.
pub fn multicast_socket(group: SocketAddrV4, iface: Ipv4Addr) -> io::Result<UdpSocket> {
    if !group.ip().is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a multicast address", group.ip()),
        ));
    }
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(group))?;
    socket.join_multicast_v4(group.ip(), &iface)?;
    if !iface.is_unspecified() {
        socket.set_multicast_if_v4(&iface)?;
    }
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    Ok(UdpSocket::from_std(socket.into()))
}
