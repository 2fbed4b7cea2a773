//! Rate limits: token buckets for bytes read (download) and written (upload), globally and per
//! connection, and which connections wait for tokens. Plain values with time passed in; the
//! reactor asks for an allowance before reading or writing a socket, reports what it moved, and
//! parks a connection whose allowance is zero until [`RateLimiter::next_deadline`].
//!
//! Over the limit the reactor simply stops reading (the kernel's receive window fills and TCP
//! slows the sender) or stops writing. A read or write may take more than the allowance (one
//! `read(2)` of a chunk frame's rest, say): the bucket then goes into debt and the next
//! allowance waits for it to be paid, so the long-run rate is exact.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ConnId;

/// Limits in bytes per second; `None` is unlimited. What `Action::SetRateLimits` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// All downloads together (bytes read from every connection).
    pub down: Option<u64>,
    /// All uploads together (bytes written to every connection).
    pub up: Option<u64>,
    /// Each connection's reads.
    pub down_per_peer: Option<u64>,
    /// Each connection's writes.
    pub up_per_peer: Option<u64>,
    /// Connections to and from loopback addresses (this machine) are not limited: the user
    /// exempted them (`--exempt-loopback`). Off by default: loopback is limited like anything
    /// else.
    pub exempt_loopback: bool,
}

impl RateLimits {
    /// No limit is set (whether loopback would be exempt does not matter then).
    pub fn is_unlimited(&self) -> bool {
        self.down.is_none()
            && self.up.is_none()
            && self.down_per_peer.is_none()
            && self.up_per_peer.is_none()
    }
}

/// Parses a rate as the user writes it: a number (fractions allowed) and an optional unit,
/// with an optional `/s`: `k`/`kB` = 1,000, `M`/`MB` = 1,000,000, `G`/`GB` = 10^9 bytes a
/// second; `KiB`, `MiB`, `GiB` are powers of 1,024; `B` or no unit is bytes. Case does not
/// matter except that a bare `m`/`M` both mean mega. `0`, `off`, `none` and `unlimited` mean no
/// limit (`None`).
pub fn parse_rate(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "off" | "none" | "unlimited" | "no") {
        return Ok(None);
    }
    let body = lower.strip_suffix("/s").unwrap_or(&lower).trim_end();
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let bad = || {
        format!(
            "invalid rate '{text}': expected e.g. 20MB/s, 20MiB/s, 500k, 1.5M, or 0/off for no limit"
        )
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err(bad());
    }
    let bytes = bytes.round() as u64;
    Ok((bytes > 0).then_some(bytes))
}

/// A rate for people: `20 MB/s`, `512 kB/s`, `off`.
pub fn format_rate(rate: Option<u64>) -> String {
    match rate {
        None => "off".to_string(),
        Some(r) if r >= 1_000_000 => format!("{} MB/s", trim_float(r as f64 / 1e6)),
        Some(r) if r >= 1_000 => format!("{} kB/s", trim_float(r as f64 / 1e3)),
        Some(r) => format!("{r} B/s"),
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The burst a bucket of `rate` bytes/s holds: a tenth of a second of traffic, at least
/// 64 KiB, so a limited transfer moves in steps of tens of milliseconds (a few hundred timer
/// wake-ups a second at most) and never bursts far beyond its rate.
pub fn burst_for(rate: u64) -> u64 {
    (rate / 10).max(64 * 1024)
}

/// A token bucket: `rate` tokens (bytes) a second, at most `burst` saved up. Tokens may go
/// negative (debt) when a caller moved more than it was allowed.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens at `last`, in bytes; negative while in debt.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        let rate = rate.max(1);
        TokenBucket {
            rate,
            burst: burst.max(1),
            tokens: burst.max(1) as f64,
            last: now,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.burst as f64);
    }

    /// Whole tokens available now (0 while in debt).
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens as u64
        } else {
            0
        }
    }

    /// `n` bytes moved: take their tokens (possibly into debt).
    pub fn take(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// When at least `want` tokens (capped at the burst) will be there; `now` if they are.
    pub fn next_refill(&mut self, want: u64, now: Instant) -> Instant {
        self.refill(now);
        let want = want.min(self.burst) as f64;
        if self.tokens >= want {
            return now;
        }
        let secs = (want - self.tokens) / self.rate as f64;
        self.last + Duration::from_secs_f64(secs)
    }
}

/// Tokens a parked connection waits for before it is woken: enough for a useful read or write
/// (fewer wake-ups), never more than the bucket holds.
const WAKE_WANT: u64 = 64 * 1024;

/// A parked connection whose deadline is this close is due.
const DUE_SLACK: Duration = Duration::from_micros(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Down,
    Up,
}

/// Per-connection buckets, made when first needed.
#[derive(Default)]
struct ConnBuckets {
    down: Option<TokenBucket>,
    up: Option<TokenBucket>,
}

/// The global buckets, the per-connection ones and the connections parked for tokens.
#[derive(Default)]
pub struct RateLimiter {
    limits: RateLimits,
    down: Option<TokenBucket>,
    up: Option<TokenBucket>,
    conns: HashMap<usize, ConnBuckets>,
    /// Connections not read because a download bucket is empty.
    parked_reads: Vec<ConnId>,
    /// Connections not written because an upload bucket is empty.
    parked_writes: Vec<ConnId>,
    /// Bytes read and written while a limit held something back (for "limited" in the UI).
    throttled: u64,
    /// Connections whose other end is a loopback address (exempt if the limits say so).
    loopback: std::collections::HashSet<usize>,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Whether any limit is set: when not, the reactor skips all of this.
    pub fn is_active(&self) -> bool {
        !self.limits.is_unlimited()
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// New limits: buckets start full at the new rates. Parked connections are woken at the
    /// next [`Self::take_due`] (their wait may be shorter now, or over).
    pub fn set_limits(&mut self, limits: RateLimits, now: Instant) {
        let bucket = |rate: Option<u64>| rate.map(|r| TokenBucket::new(r, burst_for(r), now));
        self.limits = limits;
        self.down = bucket(limits.down);
        self.up = bucket(limits.up);
        self.conns.clear();
    }

    fn buckets(&mut self, index: usize, dir: Dir, now: Instant) -> [Option<&mut TokenBucket>; 2] {
        let per_peer = match dir {
            Dir::Down => self.limits.down_per_peer,
            Dir::Up => self.limits.up_per_peer,
        };
        let own = per_peer.map(|rate| {
            let c = self.conns.entry(index).or_default();
            let slot = match dir {
                Dir::Down => &mut c.down,
                Dir::Up => &mut c.up,
            };
            slot.get_or_insert_with(|| TokenBucket::new(rate, burst_for(rate), now))
        });
        let global = match dir {
            Dir::Down => self.down.as_mut(),
            Dir::Up => self.up.as_mut(),
        };
        [global, own]
    }

    /// Whether connection `index` is not limited at all (loopback, exempted).
    fn exempt(&self, index: usize) -> bool {
        self.limits.exempt_loopback && self.loopback.contains(&index)
    }

    /// Connection `index` talks to this machine (a loopback address): exempt from the limits
    /// when [`RateLimits::exempt_loopback`] is set.
    pub fn note_loopback(&mut self, index: usize) {
        self.loopback.insert(index);
    }

    fn allowance(&mut self, index: usize, dir: Dir, now: Instant) -> usize {
        if self.exempt(index) {
            return usize::MAX;
        }
        let mut allowed = u64::MAX;
        for bucket in self.buckets(index, dir, now).into_iter().flatten() {
            allowed = allowed.min(bucket.available(now));
        }
        usize::try_from(allowed).unwrap_or(usize::MAX)
    }

    fn consumed(&mut self, index: usize, dir: Dir, n: usize, now: Instant) {
        if n == 0 || self.exempt(index) {
            return;
        }
        for bucket in self.buckets(index, dir, now).into_iter().flatten() {
            bucket.take(n as u64, now);
        }
    }

    /// Bytes connection `index` may read now (`usize::MAX`: no download limit).
    pub fn read_allowance(&mut self, index: usize, now: Instant) -> usize {
        self.allowance(index, Dir::Down, now)
    }

    /// Bytes connection `index` may write now (`usize::MAX`: no upload limit).
    pub fn write_allowance(&mut self, index: usize, now: Instant) -> usize {
        self.allowance(index, Dir::Up, now)
    }

    pub fn consumed_read(&mut self, index: usize, n: usize, now: Instant) {
        self.consumed(index, Dir::Down, n, now);
    }

    pub fn consumed_write(&mut self, index: usize, n: usize, now: Instant) {
        self.consumed(index, Dir::Up, n, now);
    }

    /// `id` is not read until its download buckets refill.
    pub fn park_read(&mut self, id: ConnId) {
        if !self.parked_reads.contains(&id) {
            self.parked_reads.push(id);
            self.throttled += 1;
        }
    }

    /// `id` is not written until its upload buckets refill.
    pub fn park_write(&mut self, id: ConnId) {
        if !self.parked_writes.contains(&id) {
            self.parked_writes.push(id);
            self.throttled += 1;
        }
    }

    /// How many times a connection waited for tokens so far.
    pub fn times_throttled(&self) -> u64 {
        self.throttled
    }

    /// Connection `index` is gone.
    pub fn forget(&mut self, index: usize) {
        self.conns.remove(&index);
        self.loopback.remove(&index);
        self.parked_reads.retain(|id| id.index != index);
        self.parked_writes.retain(|id| id.index != index);
    }

    fn wake_at(&mut self, id: ConnId, dir: Dir, now: Instant) -> Instant {
        let mut at = now;
        for bucket in self.buckets(id.index, dir, now).into_iter().flatten() {
            at = at.max(bucket.next_refill(WAKE_WANT, now));
        }
        at
    }

    /// When the first parked connection may go on (`None`: none is parked).
    pub fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        let reads = std::mem::take(&mut self.parked_reads);
        let writes = std::mem::take(&mut self.parked_writes);
        let mut at: Option<Instant> = None;
        for (list, dir) in [(&reads, Dir::Down), (&writes, Dir::Up)] {
            for &id in list {
                let t = self.wake_at(id, dir, now);
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        self.parked_reads = reads;
        self.parked_writes = writes;
        at
    }

    /// The parked connections whose wait is over: (to read again, to write again). They are no
    /// longer parked; the reactor parks them again if need be.
    pub fn take_due(&mut self, now: Instant) -> (Vec<ConnId>, Vec<ConnId>) {
        let mut due = (Vec::new(), Vec::new());
        for (dir, list) in [(Dir::Down, &mut due.0), (Dir::Up, &mut due.1)] {
            let parked = match dir {
                Dir::Down => std::mem::take(&mut self.parked_reads),
                Dir::Up => std::mem::take(&mut self.parked_writes),
            };
            let mut still = Vec::new();
            for id in parked {
                // A little slack, so float rounding never leaves a deadline that is never due.
                if self.wake_at(id, dir, now) <= now + DUE_SLACK {
                    list.push(id);
                } else {
                    still.push(id);
                }
            }
            match dir {
                Dir::Down => self.parked_reads = still,
                Dir::Up => self.parked_writes = still,
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    /// Loopback is limited like anything else unless the user exempts it; exempted, a
    /// loopback connection neither waits for nor spends tokens, and the others still do.
    #[test]
    fn loopback_is_limited_unless_exempted() {
        let now = Instant::now();
        let limits = RateLimits {
            down: Some(MB),
            ..RateLimits::default()
        };
        let mut rate = RateLimiter::new();
        rate.set_limits(limits, now);
        rate.note_loopback(1);
        let burst = rate.read_allowance(1, now);
        assert!(burst < usize::MAX, "loopback limited by default");
        rate.consumed_read(1, burst, now);
        assert_eq!(rate.read_allowance(1, now), 0);
        assert_eq!(rate.read_allowance(2, now), 0, "one global bucket");

        let mut rate = RateLimiter::new();
        let exempt = RateLimits {
            exempt_loopback: true,
            ..limits
        };
        assert!(
            !exempt.is_unlimited()
                && RateLimits {
                    exempt_loopback: true,
                    ..RateLimits::default()
                }
                .is_unlimited()
        );
        rate.set_limits(exempt, now);
        rate.note_loopback(1);
        assert_eq!(rate.read_allowance(1, now), usize::MAX);
        rate.consumed_read(1, 100 * MB as usize, now);
        let other = rate.read_allowance(2, now);
        assert!(
            other > 0 && other < usize::MAX,
            "what loopback moved cost others nothing"
        );
        rate.forget(1);
        assert!(
            rate.read_allowance(1, now) < usize::MAX,
            "a new connection on index 1"
        );
    }

    #[test]
    fn rates_parse_in_decimal_and_binary_units_and_off_is_none() {
        assert_eq!(parse_rate("20MB/s"), Ok(Some(20 * MB)));
        assert_eq!(parse_rate("20MiB/s"), Ok(Some(20 * 1024 * 1024)));
        assert_eq!(parse_rate("500k"), Ok(Some(500_000)));
        assert_eq!(parse_rate("1.5M"), Ok(Some(1_500_000)));
        assert_eq!(parse_rate("64 KiB/s"), Ok(Some(65_536)));
        assert_eq!(parse_rate("1000"), Ok(Some(1000)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("off"), Ok(None));
        assert_eq!(parse_rate("OFF"), Ok(None));
        for bad in ["", "fast", "-5M", "5 parsecs", "1e99"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(format_rate(Some(20 * MB)), "20 MB/s");
        assert_eq!(format_rate(Some(1_500_000)), "1.5 MB/s");
        assert_eq!(format_rate(Some(500_000)), "500 kB/s");
        assert_eq!(format_rate(None), "off");
    }

    #[test]
    fn a_bucket_starts_full_refills_at_its_rate_and_caps_at_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(MB, 100_000, t0);
        assert_eq!(b.available(t0), 100_000);
        b.take(100_000, t0);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.available(t0 + Duration::from_millis(50)), 50_000);
        assert_eq!(b.available(t0 + Duration::from_secs(10)), 100_000, "capped");
    }

    #[test]
    fn debt_is_paid_before_anything_more_is_allowed() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(MB, 100_000, t0);
        b.take(300_000, t0); // 200,000 in debt
        assert_eq!(b.available(t0 + Duration::from_millis(150)), 0);
        let at = b.next_refill(50_000, t0);
        let off = at.duration_since(t0).as_secs_f64() - 0.25;
        assert!(off.abs() < 1e-6, "{off}");
        assert!(b.available(at + Duration::from_micros(1)) >= 50_000);
    }

    #[test]
    fn next_refill_is_now_when_the_tokens_are_there_and_wants_at_most_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(MB, 10_000, t0);
        assert_eq!(b.next_refill(5_000, t0), t0);
        b.take(10_000, t0);
        // Wants more than the burst: waits for a full bucket only.
        let at = b.next_refill(1 << 30, t0).duration_since(t0).as_secs_f64();
        assert!((at - 0.01).abs() < 1e-6, "{at}");
    }

    /// A simulated reader that reads whatever it is allowed in 256 KiB reads (one may
    /// overshoot), sleeping until the limiter's deadline when parked: the long-run rate is the
    /// limit.
    #[test]
    fn a_limited_reader_moves_bytes_at_the_rate_over_fake_time() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new();
        r.set_limits(
            RateLimits {
                down: Some(8 * MB),
                ..RateLimits::default()
            },
            t0,
        );
        let id = ConnId::fake(3);
        let total: usize = 24 * 1024 * 1024;
        let mut read = 0;
        let mut now = t0;
        while read < total {
            let allowed = r.read_allowance(id.index, now);
            if allowed == 0 {
                r.park_read(id);
                now = r.next_deadline(now).expect("parked");
                assert!(now > t0);
                let (reads, writes) = r.take_due(now);
                assert_eq!((reads, writes), (vec![id], vec![]));
                continue;
            }
            let n = (256 * 1024).min(total - read); // may exceed `allowed`
            r.consumed_read(id.index, n, now);
            read += n;
        }
        let secs = now.duration_since(t0).as_secs_f64();
        let expected = (total as f64 - burst_for(8 * MB) as f64) / (8 * MB) as f64;
        assert!(
            (secs - expected).abs() < 0.05,
            "{secs:.3} s, expected {expected:.3} s"
        );
    }

    #[test]
    fn per_connection_buckets_limit_each_one_and_the_global_one_all() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new();
        r.set_limits(
            RateLimits {
                up: Some(10 * MB),
                up_per_peer: Some(2 * MB),
                ..RateLimits::default()
            },
            t0,
        );
        assert_eq!(r.read_allowance(1, t0), usize::MAX, "reads unlimited");
        let per = burst_for(2 * MB) as usize;
        assert_eq!(r.write_allowance(1, t0), per);
        r.consumed_write(1, per, t0);
        assert_eq!(r.write_allowance(1, t0), 0, "its own bucket is empty");
        assert_eq!(r.write_allowance(2, t0), per, "another has its own");
        // One second later connection 1 has 200 kB again (its burst); the global bucket
        // (1 MB burst) was only drawn by 1's first 200 kB.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(r.write_allowance(1, t1), per);
        r.forget(1);
        assert_eq!(
            r.write_allowance(1, t1),
            per,
            "a new connection starts full"
        );
    }

    #[test]
    fn parked_connections_wake_when_their_buckets_refill_and_are_forgotten_when_closed() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new();
        r.set_limits(
            RateLimits {
                down: Some(MB),
                up: Some(MB),
                ..RateLimits::default()
            },
            t0,
        );
        let (a, b, c) = (ConnId::fake(1), ConnId::fake(2), ConnId::fake(3));
        r.consumed_read(a.index, 200_000, t0); // 100,000 in debt
        r.consumed_write(b.index, 100_000, t0); // empty
        r.park_read(a);
        r.park_read(a);
        r.park_write(b);
        r.park_write(c);
        r.forget(c.index);
        // b needs 64 KiB: 65.5 ms; a needs 100,000 + 64 KiB: 165.5 ms.
        let close = |a: Instant, b: Instant| a.max(b) - a.min(b) < Duration::from_micros(2);
        let first = r.next_deadline(t0).unwrap();
        assert!(
            close(first, t0 + Duration::from_micros(65_536)),
            "{first:?}"
        );
        assert_eq!(r.take_due(first), (vec![], vec![b]));
        let second = r.next_deadline(first).unwrap();
        assert!(
            close(second, t0 + Duration::from_micros(165_536)),
            "{second:?}"
        );
        assert_eq!(
            r.take_due(second - Duration::from_millis(1)),
            (vec![], vec![])
        );
        assert_eq!(r.take_due(second), (vec![a], vec![]));
        assert_eq!(r.next_deadline(second), None);
    }

    #[test]
    fn no_limits_means_inactive_and_unbounded_allowances() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new();
        assert!(!r.is_active());
        assert_eq!(r.read_allowance(0, t0), usize::MAX);
        r.set_limits(
            RateLimits {
                down: Some(5),
                ..RateLimits::default()
            },
            t0,
        );
        assert!(r.is_active());
        r.set_limits(RateLimits::default(), t0);
        assert!(!r.is_active());
        assert_eq!(r.write_allowance(0, t0), usize::MAX);
    }
}
