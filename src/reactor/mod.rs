//! The event loop: one thread, one `mio::Poll`, a slab of TCP connections, frames in and out.
//! It knows frames, not meaning: everything else is the [`Driver`]'s business.

mod budget;
mod conn;
mod driver;
mod event_loop;
pub mod limits;
mod memory;
mod punch;
pub mod rate;
mod splice;
mod udp;

pub use driver::{Action, CloseReason, ConnId, ConnectTag, Control, Driver, HandshakeCut, Signal};
pub use event_loop::{ControlSender, Reactor};
pub use limits::Limits;
pub use punch::PunchDial;
pub use rate::RateLimits;
pub use splice::RestartAs;
pub use udp::{UdpSocketId, local_ip_towards, multicast_socket, unicast_socket};
