//! Giving freed memory back to the system.
//!
//! Freeing a buffer is not enough for the process's RSS to shrink with glibc's malloc: a chunk
//! frame (256 KiB and more) starts out `mmap`-backed, being above `M_MMAP_THRESHOLD` (128 KiB),
//! but the first time one is freed glibc raises the threshold to its size, and every later
//! one comes from the heap, which keeps freed pages. Pinning the threshold at start-up (which
//! also turns off the adaptation) keeps every large buffer `mmap`-backed, so freeing it unmaps
//! it; `malloc_trim` after a burst of frees returns what the heap holds, large or small.
//!
//! Measured (`tests/hardening_memory/`, a module of `tests/hardening_limits.rs`: 300 clients
//! that never read, then close; RSS about 134 MiB while they are stuck): with neither, the
//! seeder stayed at 134 MiB after they had gone; with the pinned threshold alone it fell to
//! 6.8 MiB, with the trim alone to 5.7 MiB, with both to 5.7 MiB. Both are kept: the pinned
//! threshold does not depend on a burst being recognized, the trim catches what is below the
//! threshold. One download's speed did not change measurably (docs/performance.md).

/// Allocations from this size up get their own mapping (glibc's initial value, kept fixed).
const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold for the whole process; idempotent.
pub fn pin_mmap_threshold() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; any value is accepted or refused.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        }
    });
}

/// Returns free heap pages to the system.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free; no live allocation moves.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Output queued above this counts as a burst worth trimming after...
const BURST: usize = 16 * 1024 * 1024;
/// ...once the total is back below this.
const CALM: usize = 1024 * 1024;

/// Watches the total of queued output and trims the heap once after each burst: when it falls
/// below [`CALM`] after having been above [`BURST`]. Trimming walks the heap, so it is done on
/// that transition only, not on every free.
#[derive(Default)]
pub struct TrimAfterBurst {
    in_burst: bool,
}

impl TrimAfterBurst {
    /// Looks at the current total; true if it trimmed.
    pub fn observe(&mut self, total: usize) -> bool {
        if total > BURST {
            self.in_burst = true;
        } else if self.in_burst && total < CALM {
            self.in_burst = false;
            trim();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_burst() {
        let mut t = TrimAfterBurst::default();
        assert!(!t.observe(0));
        assert!(!t.observe(BURST + 1));
        assert!(!t.observe(CALM + 1), "not calm yet");
        assert!(t.observe(0));
        assert!(!t.observe(0), "once");
        assert!(!t.observe(BURST / 2));
        assert!(!t.observe(0), "no burst since");
    }
}
