//! How much output the reactor buffers, per connection and for all of them together, and so
//! which connections it may take requests from.
//!
//! Every answer a node builds is queued on its connection until the socket takes it. A client
//! that asks and never reads would make us buffer without bound, so a connection is not read
//! while its own queue is full (`conn_high`, resumed below `conn_low`). That alone still lets
//! N such clients hold N × `conn_high`, so there is a budget for the total too:
//!
//! - Once `total_high` bytes are queued in all, the budget is *spent* until the total falls
//!   below `total_low`. While spent, only connections with nothing queued are read. A request
//!   taken from one of them adds at most one answer, which mostly goes straight into its
//!   socket, and after that it has output queued like the others. So a spent budget is
//!   overshot by at most one answer per connection, and handshakes, chat and small requests on
//!   quiet connections go on.
//! - An honest client that reads keeps draining its queue to zero, so it keeps being served
//!   (at the pace of its socket buffer) however many clients hold the rest; one that never
//!   reads waits, holding at most `conn_high` plus one answer, until it reads or the idle
//!   timeout closes it (it sends no complete frame we take meanwhile).
//! - Fairness when the budget is spent and comes back: paused connections resume oldest pause
//!   first, and one that took requests since its last pause goes to the back when it pauses
//!   again, so the same few cannot take every freed byte each time.
//!
//! A plain value with no sockets: the reactor reports bytes queued and written, and asks
//! [`OutputBudget::may_take`] before handing over each frame.

use std::collections::HashMap;

/// The marks of an [`OutputBudget`], in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetLimits {
    /// A connection is not read while this much is queued for it...
    pub conn_high: usize,
    /// ...until it has drained below this.
    pub conn_low: usize,
    /// Queued in all connections together: the budget is spent at this...
    pub total_high: usize,
    /// ...and available again below this.
    pub total_low: usize,
}

/// Per connection: 1 MiB is several times what a loopback or LAN socket takes in one write,
/// and the kernel's send buffer (up to 4 MiB, `tcp_wmem`) holds what is in flight, so a fast
/// download keeps its full speed (measured in docs/performance.md). In all: 64 MiB lets 64
/// connections hold a full queue at once, beyond which the kernel's buffers are what carry the
/// data anyway; with 300 clients that never read (256 KiB chunks) the worst case is 64 MiB +
/// 300 × 256 KiB ≈ 140 MiB.
pub const DEFAULT_LIMITS: BudgetLimits = BudgetLimits {
    conn_high: 1024 * 1024,
    conn_low: 256 * 1024,
    total_high: 64 * 1024 * 1024,
    total_low: 48 * 1024 * 1024,
};

/// What the budget knows of one connection (only those with output queued or paused).
#[derive(Default)]
struct ConnOutput {
    queued: usize,
    /// Pause order: `Some` while we hold back its frames, smaller is older.
    paused: Option<u64>,
    /// The order it had when last paused; kept across a resume so that one that resumes and
    /// takes nothing keeps its place.
    place: u64,
    /// Took a frame since it was last paused (it then goes to the back when it pauses again).
    served: bool,
}

impl ConnOutput {
    /// Nothing to remember: nothing queued, and never paused (a place is kept until the
    /// connection is forgotten).
    fn is_idle(&self) -> bool {
        self.queued == 0 && self.paused.is_none() && self.place == 0
    }
}

/// Output queued per connection and in total; see the module docs.
///
/// Invariants: `total` is the sum of `conns[..].queued`; `conns` holds no idle entry (nothing
/// queued and never paused); `spent` implies `total >= total_low`.
pub struct OutputBudget {
    limits: BudgetLimits,
    conns: HashMap<usize, ConnOutput>,
    total: usize,
    spent: bool,
    next_place: u64,
    /// Paused connections to look at in [`Self::take_resumable`]: their queue shrank.
    drained: Vec<usize>,
    /// The budget came back since the last [`Self::take_resumable`]: look at every paused one.
    recovered: bool,
}

impl OutputBudget {
    pub fn new(limits: BudgetLimits) -> OutputBudget {
        OutputBudget {
            limits,
            conns: HashMap::new(),
            total: 0,
            spent: false,
            next_place: 0,
            drained: Vec::new(),
            recovered: false,
        }
    }

    /// Bytes queued in all connections.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether only connections with nothing queued are read now.
    #[cfg(test)]
    pub fn is_spent(&self) -> bool {
        self.spent
    }

    /// Bytes queued for connection `index`.
    pub fn queued(&self, index: usize) -> usize {
        self.conns.get(&index).map_or(0, |c| c.queued)
    }

    /// `n` bytes were queued on connection `index`.
    pub fn add(&mut self, index: usize, n: usize) {
        if n == 0 {
            return;
        }
        self.conns.entry(index).or_default().queued += n;
        self.total += n;
        if self.total >= self.limits.total_high {
            self.spent = true;
        }
    }

    /// `n` of the bytes queued on `index` were written (or dropped with the connection).
    pub fn remove(&mut self, index: usize, n: usize) {
        let Some(c) = self.conns.get_mut(&index) else {
            return;
        };
        let n = n.min(c.queued);
        c.queued -= n;
        self.total -= n;
        if c.paused.is_some() && n > 0 {
            self.drained.push(index);
        }
        if c.is_idle() {
            self.conns.remove(&index);
        }
        if self.spent && self.total < self.limits.total_low {
            self.spent = false;
            self.recovered = true;
        }
    }

    /// Connection `index` is gone: its bytes no longer count.
    pub fn forget(&mut self, index: usize) {
        if let Some(c) = self.conns.remove(&index) {
            self.total -= c.queued;
            if self.spent && self.total < self.limits.total_low {
                self.spent = false;
                self.recovered = true;
            }
        }
    }

    /// Whether the next frame of connection `index` may be handed over now.
    pub fn may_take(&self, index: usize) -> bool {
        let Some(c) = self.conns.get(&index) else {
            return true; // nothing queued, not paused
        };
        if c.queued >= self.limits.conn_high {
            return false;
        }
        if c.paused.is_some() && c.queued >= self.limits.conn_low {
            return false; // hysteresis: a paused one waits for its own queue to drain
        }
        !self.spent || c.queued == 0
    }

    /// A frame of `index` was handed over.
    pub fn took_frame(&mut self, index: usize) {
        if let Some(c) = self.conns.get_mut(&index) {
            c.served = true;
        }
    }

    /// We hold back the frames of `index` (it failed [`Self::may_take`]) until
    /// [`Self::take_resumable`] returns it.
    pub fn pause(&mut self, index: usize) {
        let c = self.conns.entry(index).or_default();
        if c.paused.is_some() {
            return;
        }
        if c.served || c.place == 0 {
            self.next_place += 1;
            c.place = self.next_place;
            c.served = false;
        }
        c.paused = Some(c.place);
    }

    pub fn is_paused(&self, index: usize) -> bool {
        self.conns.get(&index).is_some_and(|c| c.paused.is_some())
    }

    /// The paused connections that may take frames again, oldest pause first; they are no
    /// longer paused (the caller reads them, and pauses them again if need be).
    pub fn take_resumable(&mut self) -> Vec<usize> {
        let candidates: Vec<usize> = if std::mem::take(&mut self.recovered) {
            self.drained.clear();
            self.conns
                .iter()
                .filter(|(_, c)| c.paused.is_some())
                .map(|(&i, _)| i)
                .collect()
        } else {
            std::mem::take(&mut self.drained)
        };
        let mut ready: Vec<(u64, usize)> = Vec::new();
        for index in candidates {
            // For a paused connection `may_take` already asks for its queue below `conn_low`.
            if !self.is_paused(index) || !self.may_take(index) {
                continue;
            }
            if let Some(c) = self.conns.get_mut(&index)
                && let Some(place) = c.paused.take()
            {
                ready.push((place, index));
            }
        }
        ready.sort_unstable();
        ready.into_iter().map(|(_, index)| index).collect()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let sum: usize = self.conns.values().map(|c| c.queued).sum();
        assert_eq!(sum, self.total);
        assert!(self.conns.values().all(|c| !c.is_idle()));
        assert!(!self.spent || self.total >= self.limits.total_low);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BudgetLimits = BudgetLimits {
        conn_high: 100,
        conn_low: 25,
        total_high: 1000,
        total_low: 600,
    };

    /// Pauses every connection that may not take frames, as the reactor does.
    fn pause_blocked(b: &mut OutputBudget, conns: impl IntoIterator<Item = usize>) {
        for i in conns {
            if !b.may_take(i) {
                b.pause(i);
            }
        }
    }

    #[test]
    fn one_connection_stops_at_its_high_mark_and_resumes_below_its_low_mark() {
        let mut b = OutputBudget::new(LIMITS);
        assert!(b.may_take(1));
        b.add(1, 99);
        assert!(b.may_take(1), "under the mark: one more frame");
        b.add(1, 30);
        assert!(!b.may_take(1));
        b.pause(1);
        b.remove(1, 50); // 79 left: still above the low mark
        assert!(!b.may_take(1));
        assert!(b.take_resumable().is_empty());
        b.remove(1, 60); // 19 left
        assert_eq!(b.take_resumable(), vec![1]);
        assert!(b.may_take(1));
        assert!(!b.is_paused(1));
        b.check_invariants();
    }

    #[test]
    fn a_spent_budget_reads_only_connections_with_nothing_queued() {
        let mut b = OutputBudget::new(LIMITS);
        for i in 0..10 {
            b.add(i, 99); // each under its own mark
        }
        assert!(!b.is_spent());
        b.add(10, 20); // 1010 in all
        assert!(b.is_spent());
        for i in 0..=10 {
            assert!(!b.may_take(i), "conn {i} has output queued");
        }
        assert!(b.may_take(11), "a quiet connection is still read");
        pause_blocked(&mut b, 0..=11);
        // Draining to 610 is not enough (hysteresis)...
        for i in 0..4 {
            b.remove(i, 99);
        }
        assert!(b.is_spent());
        // ...except for those whose queue is now empty: they may go on.
        assert_eq!(b.take_resumable(), vec![0, 1, 2, 3]);
        assert!(!b.may_take(4));
        // Below the low mark every paused one under its own low mark comes back.
        b.remove(4, 99);
        b.remove(5, 90); // 9 left on 5
        assert!(!b.is_spent());
        assert_eq!(b.total(), 99 * 4 + 9 + 20);
        let back = b.take_resumable();
        assert_eq!(
            back,
            vec![4, 5, 10],
            "oldest pause first; 6..=9 are over their low mark"
        );
        b.check_invariants();
    }

    #[test]
    fn connections_that_took_frames_go_to_the_back_when_paused_again() {
        let mut b = OutputBudget::new(LIMITS);
        for i in [7, 3, 5] {
            b.add(i, 100);
            b.pause(i);
        }
        b.add(9, 800); // 1100: spent
        for i in [7, 3, 5] {
            b.remove(i, 90);
        }
        b.remove(9, 300); // 530: available again
        assert_eq!(b.take_resumable(), vec![7, 3, 5]);
        // 7 goes first, takes a frame whose answer spends the budget again; 3 and 5, with
        // output still queued, take nothing and keep their places.
        assert!(b.may_take(7));
        b.took_frame(7);
        b.add(7, 500);
        pause_blocked(&mut b, [7, 3, 5]);
        assert!(b.is_paused(3) && b.is_paused(5) && b.is_paused(7));
        b.remove(9, 500);
        b.remove(7, 500);
        assert_eq!(b.take_resumable(), vec![3, 5, 7]);
        b.check_invariants();
    }

    #[test]
    fn forgetting_a_connection_returns_its_bytes_and_can_end_a_spent_budget() {
        let mut b = OutputBudget::new(LIMITS);
        b.add(1, 600);
        b.add(2, 50);
        b.add(3, 400);
        assert!(b.is_spent());
        pause_blocked(&mut b, [1, 2, 3]);
        b.forget(1);
        assert!(!b.is_spent());
        assert_eq!(b.total(), 450);
        assert_eq!(
            b.take_resumable(),
            Vec::<usize>::new(),
            "2 and 3 are over conn_low"
        );
        b.remove(2, 30);
        assert_eq!(b.take_resumable(), vec![2]);
        b.forget(3);
        b.forget(3);
        b.forget(42);
        b.remove(42, 10);
        assert_eq!(b.total(), 20);
        assert!(!b.is_paused(3));
        b.check_invariants();
    }

    /// A pseudo-random workload of many connections: the invariants hold throughout, the total
    /// never exceeds `total_high` plus one answer per connection, and every paused connection
    /// comes back once everything is written.
    #[test]
    fn random_workloads_stay_bounded_and_nobody_is_left_paused() {
        let mut rng = 0x1234_5678_9ABC_DEF1u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        const CONNS: usize = 40;
        const ANSWER: usize = 30;
        let mut b = OutputBudget::new(LIMITS);
        for _ in 0..20_000 {
            let i = (next() % CONNS as u64) as usize;
            if next() % 2 == 0 {
                if b.may_take(i) {
                    b.took_frame(i);
                    b.add(i, (next() % ANSWER as u64) as usize + 1);
                } else {
                    b.pause(i);
                }
            } else {
                b.remove(i, (next() % 40) as usize);
            }
            let _ = b.take_resumable();
            // Under the mark until spent; then one answer at most per connection that was
            // empty (the last one before the mark included).
            assert!(b.total() < LIMITS.total_high + (CONNS + 1) * ANSWER);
            b.check_invariants();
        }
        for i in 0..CONNS {
            b.remove(i, usize::MAX);
        }
        let _ = b.take_resumable();
        assert!((0..CONNS).all(|i| !b.is_paused(i) && b.may_take(i)));
        assert_eq!(b.total(), 0);
        b.check_invariants();
    }
}
