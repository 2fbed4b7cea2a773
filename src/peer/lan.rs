//! LAN discovery: every peer multicasts a small announcement (its name and listen port) to a
//! group on the local network at start and every [`ANNOUNCE_EVERY`], and adds the peers it hears
//! to its table as `lan`, at the datagram's source IP and the announced port. Hearing a peer it
//! did not know makes a peer announce itself early (at most once a second), so a newcomer hears
//! everyone within a moment instead of within the interval.
//!
//! Datagram: one CBOR map `{"magic": "p2p-lan", "version": 1, "name": NAME, "port": PORT}`, at
//! most [`MAX_DATAGRAM`] bytes, nothing after it. Anything else is ignored without a word (a
//! LAN carries other people's traffic too), as are our own announcements (looped back to us),
//! and more than [`PER_NAME_PER_SEC`] announcements a second for one name from one IP or
//! [`PER_IP_PER_SEC`] from one IP.
//!
//! [`LanState`] is the timing and the filtering as a plain value (time and a jitter seed
//! passed in); the node's side, which offers what it hears to the peer table, is in
//! `exchange_glue.rs`.

use super::jitter::Jitter;
use crate::names::check_peer_name;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The default group: administratively scoped (239/8, RFC 2365), so it stays on the site.
pub const DEFAULT_GROUP: &str = "239.255.70.80:9001";
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// Hearing a peer we did not know (or had not heard for a while) makes us announce ourselves
/// early, so a newcomer learns the others at once; never more than once per this interval.
const EARLY_ANNOUNCE_GAP: Duration = Duration::from_secs(1);
pub const MAX_DATAGRAM: usize = 512;
const MAGIC: &str = "p2p-lan";
/// 2: with the sender's key (`id`), since protocol version 3.
const LAN_VERSION: u32 = 2;
pub const PER_NAME_PER_SEC: u32 = 2;
pub const PER_IP_PER_SEC: u32 = 64;
/// Senders tracked per one-second window; datagrams from further senders wait for the next.
const MAX_SENDERS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanConfig {
    /// Multicast group and port.
    pub group: SocketAddrV4,
    /// Address of the interface to use (`0.0.0.0`: the kernel's choice).
    pub iface: Ipv4Addr,
    /// Whether we announce ourselves, or only listen to others (see [`fit_to_listener`]).
    pub announce: bool,
}

/// Makes LAN discovery never announce an address we do not listen on: receivers dial the
/// announcement's source IP, so a peer listening only on 127.0.0.1 (or on one IP while the
/// kernel would announce from another interface) sent them to an address that refuses.
/// Listening on one IPv4 address: announce from that interface. Listening only on loopback
/// (unless the LAN interface is loopback too, as in tests) or on one IPv6 address: stay quiet
/// and only listen. Returns why announcements are off, to say so once.
pub fn fit_to_listener(lan: &mut LanConfig, listen: SocketAddr) -> Option<String> {
    let ip = listen.ip();
    if ip.is_unspecified() {
        return None;
    }
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() && lan.iface.is_loopback() => None,
        IpAddr::V4(v4) if !v4.is_loopback() && (lan.iface.is_unspecified() || lan.iface == v4) => {
            lan.iface = v4;
            None
        }
        _ => {
            lan.announce = false;
            Some(format!(
                "this peer listens only on {listen}, which peers on the LAN (group {}, interface \
                 {}) cannot reach there: it does not announce itself, and still hears others",
                lan.group, lan.iface
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    pub magic: String,
    pub version: u32,
    pub name: String,
    pub port: u16,
    /// The sender's key: what a dial to it must reach (the name may be pinned to another).
    pub id: crate::identity::PeerId,
}

pub fn encode_announce(name: &str, port: u16, id: crate::identity::PeerId) -> Vec<u8> {
    let a = Announce {
        magic: MAGIC.to_string(),
        version: LAN_VERSION,
        name: name.to_string(),
        port,
        id,
    };
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(&a, &mut out);
    out
}

/// The announcement in `bytes`, or why it is ignored.
pub fn decode_announce(bytes: &[u8]) -> Result<Announce, String> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(format!("{} bytes, more than {MAX_DATAGRAM}", bytes.len()));
    }
    let mut rest = bytes;
    let a: Announce = ciborium::de::from_reader_with_recursion_limit(&mut rest, 8)
        .map_err(|e| format!("not an announcement: {e}"))?;
    if !rest.is_empty() {
        return Err("bytes after the announcement".into());
    }
    if a.magic != MAGIC {
        return Err("wrong magic".into());
    }
    if a.version != LAN_VERSION {
        return Err(format!("version {}", a.version));
    }
    check_peer_name(&a.name)?;
    if a.port == 0 {
        return Err("port 0".into());
    }
    Ok(a)
}

/// Counts announcements per sender in one-second windows.
pub struct RateLimit {
    window: Instant,
    per_ip: HashMap<IpAddr, u32>,
    per_name: HashMap<(IpAddr, String), u32>,
}

impl RateLimit {
    pub fn new(now: Instant) -> RateLimit {
        RateLimit {
            window: now,
            per_ip: HashMap::new(),
            per_name: HashMap::new(),
        }
    }

    /// Whether one more announcement of `name` from `ip` is taken now.
    pub fn allow(&mut self, ip: IpAddr, name: &str, now: Instant) -> bool {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.per_ip.clear();
            self.per_name.clear();
        }
        if self.per_name.len() >= MAX_SENDERS && !self.per_name.contains_key(&(ip, name.into())) {
            return false;
        }
        let by_ip = self.per_ip.entry(ip).or_insert(0);
        if *by_ip >= PER_IP_PER_SEC {
            return false;
        }
        let by_name = self.per_name.entry((ip, name.to_string())).or_insert(0);
        if *by_name >= PER_NAME_PER_SEC {
            return false;
        }
        *by_ip += 1;
        *by_name += 1;
        true
    }
}

/// The peer's LAN discovery state, as a plain value: it is told the time and what arrived,
/// and says what to send. Feed it with [`LanState::handle_timeout`] and
/// [`LanState::handle_datagram`]; after either, drain [`LanState::poll_transmit`]; call
/// `handle_timeout` again at [`LanState::poll_timeout`].
pub struct LanState {
    pub cfg: LanConfig,
    name: String,
    next_announce: Instant,
    last_announce: Option<Instant>,
    announce: Vec<u8>,
    limit: RateLimit,
    jitter: Jitter,
    /// An announcement to send to the group.
    transmit: Option<Vec<u8>>,
}

/// A peer heard on the LAN, at the datagram's source IP and the port it announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    pub name: String,
    pub addr: SocketAddr,
    /// The key it announced.
    pub id: crate::identity::PeerId,
}

impl LanState {
    /// `seed` seeds the jitter of the announcement interval.
    pub fn new(
        cfg: LanConfig,
        name: &str,
        listen_port: u16,
        id: crate::identity::PeerId,
        seed: u64,
        now: Instant,
    ) -> LanState {
        LanState {
            cfg,
            name: name.to_string(),
            next_announce: now,
            last_announce: None,
            announce: encode_announce(name, listen_port, id),
            limit: RateLimit::new(now),
            jitter: Jitter::new(seed),
            transmit: None,
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_announce
    }

    /// The announcement to multicast to the group now, if any.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let bytes = self.transmit.take()?;
        Some((SocketAddr::V4(self.cfg.group), bytes))
    }

    /// Announces us when it is time (unless we only listen), and schedules the next one
    /// [`ANNOUNCE_EVERY`] ± 10% later, so peers started together do not stay in step.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_announce {
            return;
        }
        let noise = self.jitter.per_mille();
        self.next_announce = now + ANNOUNCE_EVERY.mul_f64(0.9 + noise as f64 / 5000.0);
        if !self.cfg.announce {
            return;
        }
        self.last_announce = Some(now);
        self.transmit = Some(self.announce.clone());
    }

    /// A datagram from `from`: the peer it announces, unless it is not an announcement, is
    /// ours, or its sender is over its rate. `last_seen` says when the table last heard of a
    /// name: one not heard of for a while is news, and news makes us announce ourselves
    /// early (at most once per [`EARLY_ANNOUNCE_GAP`]), so a newcomer learns of us at once.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        last_seen: impl Fn(&str) -> Option<Instant>,
        now: Instant,
    ) -> Option<Heard> {
        let a = decode_announce(bytes).ok()?;
        if a.name == self.name || !self.limit.allow(from.ip(), &a.name, now) {
            return None;
        }
        let news = last_seen(&a.name)
            .is_none_or(|seen| now.saturating_duration_since(seen) > 2 * ANNOUNCE_EVERY);
        if news {
            let early = self
                .last_announce
                .map_or(now, |t| (t + EARLY_ANNOUNCE_GAP).max(now));
            self.next_announce = self.next_announce.min(early);
        }
        Some(Heard {
            name: a.name,
            addr: SocketAddr::new(from.ip(), a.port),
            id: a.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the examples: 32 bytes 0x42.
    fn key() -> crate::identity::PeerId {
        crate::identity::PeerId::from_public_key([0x42; 32])
    }

    #[test]
    fn announcement_round_trip_and_size() {
        let bytes = encode_announce("Alice", 41237, key());
        assert!(bytes.len() < 96, "{} bytes", bytes.len());
        let a = decode_announce(&bytes).unwrap();
        assert_eq!((a.name.as_str(), a.port), ("Alice", 41237));
    }

    /// The worked example of PROTOCOL.md §14.3.
    #[test]
    fn announcement_encodes_as_documented() {
        assert_eq!(
            hex::encode(encode_announce("Alice", 4000, key())),
            concat!(
                "a5656d61676963677032702d6c616e",
                "6776657273696f6e02",
                "646e616d6565416c696365",
                "64706f7274190fa0",
                "626964",
                "5820",
                "4242424242424242424242424242424242424242424242424242424242424242"
            )
        );
    }

    #[test]
    fn malformed_announcements_are_refused() {
        let good = encode_announce("Alice", 5, key());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_announce(&trailing).is_err());
        assert!(decode_announce(&good[..good.len() - 1]).is_err());
        assert!(decode_announce(b"").is_err());
        assert!(decode_announce(&[0x9f; 400]).is_err());
        assert!(decode_announce(&vec![0u8; MAX_DATAGRAM + 1]).is_err());
        assert!(decode_announce(&encode_announce("Al ice", 5, key())).is_err());
        assert!(decode_announce(&encode_announce("Alice", 0, key())).is_err());
        let other = |magic: &str, version: u32| {
            let mut out = Vec::new();
            let a = Announce {
                magic: magic.into(),
                version,
                name: "Alice".into(),
                port: 5,
                id: key(),
            };
            ciborium::into_writer(&a, &mut out).unwrap();
            decode_announce(&out)
        };
        assert!(other("p2p-lan", 2).is_ok());
        assert!(other("other", 2).is_err());
        assert!(other("p2p-lan", 1).is_err());
    }

    #[test]
    fn rate_limit_per_name_and_per_ip() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..PER_NAME_PER_SEC {
            assert!(r.allow(ip, "A", t0));
        }
        assert!(!r.allow(ip, "A", t0));
        assert!(
            r.allow(ip, "B", t0),
            "another name from the same host is separate"
        );
        assert!(r.allow(other, "A", t0));
        let mut taken = 0;
        for i in 0..1000 {
            if r.allow(ip, &format!("N{i}"), t0) {
                taken += 1;
            }
        }
        assert_eq!(taken, PER_IP_PER_SEC - PER_NAME_PER_SEC - 1);
        // A new second, a new budget.
        assert!(r.allow(ip, "A", t0 + Duration::from_secs(1)));
    }

    fn cfg(iface: [u8; 4]) -> LanConfig {
        LanConfig {
            group: DEFAULT_GROUP.parse().unwrap(),
            iface: iface.into(),
            announce: true,
        }
    }

    #[test]
    fn announcements_only_name_an_address_we_listen_on() {
        let at = |ip: &str| -> SocketAddr { format!("{ip}:4000").parse().unwrap() };
        // Everywhere: the kernel's choice of interface is fine.
        let mut c = cfg([0, 0, 0, 0]);
        assert_eq!(fit_to_listener(&mut c, at("0.0.0.0")), None);
        assert!(c.announce);
        // One LAN address: announce from that interface.
        let mut c = cfg([0, 0, 0, 0]);
        assert_eq!(fit_to_listener(&mut c, at("192.168.1.7")), None);
        assert_eq!((c.iface, c.announce), (Ipv4Addr::new(192, 168, 1, 7), true));
        // Loopback only, LAN on a real interface: quiet.
        let mut c = cfg([0, 0, 0, 0]);
        let why = fit_to_listener(&mut c, at("127.0.0.1")).unwrap();
        assert!(why.contains("127.0.0.1:4000"), "{why}");
        assert!(!c.announce);
        // Loopback with LAN pinned to loopback (tests): announce.
        let mut c = cfg([127, 0, 0, 1]);
        assert_eq!(fit_to_listener(&mut c, at("127.0.0.1")), None);
        assert!(c.announce);
        // One address, LAN pinned to another interface: quiet.
        let mut c = cfg([10, 0, 0, 1]);
        assert!(fit_to_listener(&mut c, at("192.168.1.7")).is_some());
        assert!(!c.announce);
        // A specific IPv6 address: IPv4 announcements would name the wrong address.
        let mut c = cfg([0, 0, 0, 0]);
        assert!(fit_to_listener(&mut c, "[fd00::1]:4000".parse().unwrap()).is_some());
        assert!(!c.announce);
    }

    fn lan(announce: bool, seed: u64, now: Instant) -> LanState {
        let mut c = cfg([127, 0, 0, 1]);
        c.announce = announce;
        LanState::new(c, "Me", 4000, key(), seed, now)
    }

    /// Announcement times over a minute, from `t0`, stepping 10 ms.
    fn announcements(l: &mut LanState, t0: Instant, secs: u64) -> Vec<Duration> {
        let mut at = Vec::new();
        let mut now = t0;
        while now <= t0 + Duration::from_secs(secs) {
            l.handle_timeout(now);
            if let Some((to, bytes)) = l.poll_transmit() {
                assert_eq!(to, SocketAddr::V4(l.cfg.group));
                assert_eq!(decode_announce(&bytes).unwrap().name, "Me");
                at.push(now - t0);
            }
            now += Duration::from_millis(10);
        }
        at
    }

    /// One announcement at start, then every 5 s ± 10%, the jitter replayed from its seed.
    #[test]
    fn announcements_go_out_every_interval_with_jitter_from_the_seed() {
        let t0 = Instant::now();
        let at = announcements(&mut lan(true, 1, t0), t0, 60);
        assert_eq!(at[0], Duration::ZERO);
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(4500) && gap <= Duration::from_millis(5510),
                "{gap:?}"
            );
        }
        assert!(at.len() >= 11, "{at:?}");
        assert_eq!(
            announcements(&mut lan(true, 1, t0), t0, 60),
            at,
            "the same seed replays"
        );
        assert_ne!(announcements(&mut lan(true, 2, t0), t0, 60), at);
        // Listening only: nothing goes out, the timer still runs.
        let mut quiet = lan(false, 1, t0);
        assert!(announcements(&mut quiet, t0, 20).is_empty());
        assert!(quiet.poll_timeout() > t0);
    }

    /// A peer heard for the first time makes us announce early (at most once a second); one
    /// heard recently does not; our own announcements and garbage are dropped.
    #[test]
    fn news_on_the_lan_brings_the_next_announcement_forward() {
        let t0 = Instant::now();
        let mut l = lan(true, 1, t0);
        l.handle_timeout(t0);
        assert!(l.poll_transmit().is_some());
        let next = l.poll_timeout();
        assert!(next >= t0 + Duration::from_millis(4500));
        let from: SocketAddr = "10.0.0.7:9001".parse().unwrap();
        let bob = encode_announce("Bob", 5000, key());
        let never = |_: &str| None;
        let at = t0 + Duration::from_millis(200);
        assert_eq!(
            l.handle_datagram(from, &encode_announce("Me", 1, key()), never, at),
            None
        );
        assert_eq!(l.handle_datagram(from, b"not cbor", never, at), None);
        assert_eq!(l.poll_timeout(), next, "nothing new heard");
        let recent = |_: &str| Some(at);
        let heard = l.handle_datagram(from, &bob, recent, at).unwrap();
        assert_eq!(heard.addr, "10.0.0.7:5000".parse().unwrap());
        assert_eq!(l.poll_timeout(), next, "Bob was heard just now: no news");
        let heard = l.handle_datagram(from, &encode_announce("Carol", 5001, key()), never, at);
        assert_eq!(heard.unwrap().name, "Carol");
        assert_eq!(
            l.poll_timeout(),
            t0 + EARLY_ANNOUNCE_GAP,
            "early, one gap after the last"
        );
        // The sender's rate: two announcements a second per name.
        assert!(l.handle_datagram(from, &bob, never, at).is_some());
        assert_eq!(l.handle_datagram(from, &bob, never, at), None);
    }
}
