//! Giving freed memory back to the system after a burst.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena for reuse: after a
//! burst (thousands of files open at once, then closed) the daemon would keep the burst's
//! peak for good. The request path only counts what it frees (`freed`, one atomic add);
//! once a burst has freed `BURST` bytes, a trimmer thread waits for the frees to stop
//! for `QUIET` and then has malloc return every free page (`malloc_trim`). Idle, the
//! thread sleeps on a condition variable: no timer, no polling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Freed bytes that make a burst worth trimming after.
const BURST: usize = 256 << 10;
/// How long the frees must have stopped before trimming: trimming takes every arena's
/// lock, so never in the middle of a burst.
const QUIET: Duration = Duration::from_millis(100);

/// What the request path has freed since the last trim, and the trimmer's wakeup.
struct Burst {
    freed: AtomicUsize,
    /// Set when `freed` crossed BURST; the trimmer waits on it.
    due: Mutex<bool>,
    wake: Condvar,
}

static BURSTS: Burst = Burst::new();

impl Burst {
    const fn new() -> Burst {
        Burst {
            freed: AtomicUsize::new(0),
            due: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn freed(&self, bytes: usize) {
        let before = self.freed.fetch_add(bytes, Ordering::Relaxed);
        if before < BURST && before + bytes >= BURST {
            *self.due() = true;
            self.wake.notify_one();
        }
    }

    fn due(&self) -> std::sync::MutexGuard<'_, bool> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a burst to cross BURST.
    fn wait_for_one(&self) {
        let mut due = self.due();
        while !*due {
            due = self.wake.wait(due).unwrap_or_else(|e| e.into_inner());
        }
        *due = false;
    }

    /// Wait for the frees to stop for QUIET; true if there were any since the last call.
    fn wait_for_quiet(&self) -> bool {
        loop {
            let seen = self.freed.load(Ordering::Relaxed);
            std::thread::sleep(QUIET);
            if self.freed.load(Ordering::Relaxed) == seen {
                return self.freed.swap(0, Ordering::Relaxed) > 0;
            }
        }
    }
}

/// Count `bytes` given back to the allocator (request path: one atomic add, and a wakeup
/// only when a burst crosses the threshold).
pub fn freed(bytes: usize) {
    BURSTS.freed(bytes);
}

/// The trimmer thread's body: runs for the life of the process. `release` lets go of
/// what the daemon keeps for reuse, whose blocks a burst left scattered.
pub fn run_trimmer(release: impl Fn()) -> ! {
    loop {
        BURSTS.wait_for_one();
        // Trim once the frees stop, and again while a burst's tail (a pause longer than
        // QUIET, then more frees) keeps freeing: a trim frees only what is free by then.
        while BURSTS.wait_for_quiet() {
            release();
            trim();
        }
    }
}

/// Have malloc give every free page of every arena back to the system.
fn trim() {
    // SAFETY: malloc_trim only walks malloc's own arenas under their locks.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_frees_wakes_the_trimmer_once() {
        let b = Burst::new();
        b.freed(BURST / 2);
        assert!(!*b.due(), "half a burst is not worth a trim");
        b.freed(BURST / 2);
        assert!(*b.due(), "a whole burst is");
        *b.due() = false;
        b.freed(BURST);
        assert!(!*b.due(), "one wakeup per burst, not per free");
        // The trimmer's waits: the burst is due; its frees have stopped, and then no more
        // came; the count restarts.
        *b.due() = true;
        b.wait_for_one();
        assert!(b.wait_for_quiet(), "the burst's frees");
        assert!(!b.wait_for_quiet(), "nothing freed since");
        b.freed(BURST);
        assert!(*b.due(), "the next burst wakes it again");
    }
}
