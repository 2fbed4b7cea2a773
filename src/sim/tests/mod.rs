//! Tests on the in-memory harness: protocol logic (timeouts, backoff, bans, end game, stalls,
//! reconnects, silent trackers, peer exchange, names refused) in fake time. Each test says
//! which process test it came from.

mod content_ids;
mod discovery;
mod downloads;
mod folders;
mod harness;
mod lan;
mod round_trips;
mod tracker_link;
mod trust;

/// `len` deterministic pseudo-random bytes (xorshift64*), different for each `seed` (the same
/// bytes as `tests/common`'s).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The fields of a listing line: split on runs of two or more spaces.
pub fn fields(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// The `peers` rows among printed lines: (name, addr, `Ns ago`, source, reachable).
pub fn peer_rows(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| fields(l))
        .filter(|f| (6..=7).contains(&f.len()) && f[2].ends_with("s ago"))
        .collect()
}

/// The row of `name`, or a panic showing `out`.
pub fn row<'a>(rows: &'a [Vec<String>], name: &str, out: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("`peers` does not list {name}\n{out}"))
}

/// The whole downloaded file, or a panic.
pub fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
