//! Hole-punching dials in the reactor (`Action::ConnectFrom`, PROTOCOL.md §18.8): a TCP
//! connect from a socket bound to the port we listen on, so that the packets leave through
//! the same NAT mapping the other side was told about, while the other side does the same
//! towards us (TCP simultaneous open). The listener shares its port with these sockets only:
//! it is bound without `SO_REUSEPORT` (so a second process still finds the port taken) and
//! gets it right after (`share_listen_port`); ordinary dials never bind to the listen port.
//!
//! Once TCP is up the connection is like any dial's: the secure handshake in the role the
//! node chose (on a simultaneous open both sides connected, so the node picks who initiates),
//! proving the key expected, reported with `handle_connected`/`handle_connect_failed`.

use super::conn::Phase;
use super::event_loop::Reactor;
use super::{ConnectTag, Driver};
use crate::identity::PeerId;
use crate::secure::{Link, Role};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One punching dial: to `to`, from our port `local_port`, as the secure handshake's
/// initiator or responder, expecting `expected`; TCP must be up within `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchDial {
    pub to: SocketAddr,
    pub local_port: u16,
    pub tag: ConnectTag,
    pub expected: PeerId,
    pub initiator: bool,
    pub timeout: Duration,
}

/// Sets `SO_REUSEPORT` on a bound listener, so punching sockets may bind its port too.
pub(super) fn share_listen_port(fd: &impl AsRawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt(2) on a descriptor the caller owns, with a pointer to a c_int and its
    // size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!(
            "SO_REUSEPORT on the listener: {} (hole punching will fail)",
            io::Error::last_os_error()
        );
    }
}

/// A non-blocking socket bound to `local_port` (sharing it with the listener) whose connect to
/// `to` has begun.
fn punch_socket(to: SocketAddr, local_port: u16) -> io::Result<mio::net::TcpStream> {
    let (domain, any) = match to.ip() {
        IpAddr::V4(_) => (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        IpAddr::V6(_) => (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    share_listen_port(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(SocketAddr::new(any, local_port)))?;
    match socket.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

impl Reactor {
    /// Starts a punching dial (see [`PunchDial`]).
    pub(super) fn connect_from(&mut self, dial: PunchDial, driver: &mut impl Driver) {
        let role = if dial.initiator {
            Role::Initiator
        } else {
            Role::Responder
        };
        let link = Link::new(role, &self.identity, &self.prologue, Some(dial.expected));
        let phase = Phase::Connecting {
            tag: dial.tag,
            deadline: Instant::now() + dial.timeout,
        };
        let inserted = punch_socket(dial.to, dial.local_port)
            .map(|stream| self.insert(stream, dial.to, phase, link));
        let error = match inserted {
            Ok(Some(_)) => return,
            Ok(None) => io::Error::other("could not register the socket"),
            Err(e) => e,
        };
        driver.handle_connect_failed(dial.tag, error, Instant::now());
    }
}
