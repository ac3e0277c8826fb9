//! Logging to stderr, one line per event. Debug lines only with `-d`.
//!
//! Warnings (`warn!`) are rate limited per call site, the cause they report: a container can
//! make the request path fail as often as it reads (a hostile cgroup file, say), and must
//! not flood the host's log. The first warning of a site in each `INTERVAL_MS` is written;
//! the rest are counted, and the count goes out with the site's next line. `warn_each!` is
//! for what an operator causes or must see every time (an upgrade refused, a crash), never
//! for the request path.

use std::fmt::Arguments;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// At most one warning line per call site in this many milliseconds.
pub const INTERVAL_MS: u64 = 5_000;

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// The rate limit of one call site. Lock-free: warnings come from every worker at once.
pub struct Limit {
    /// When (ms, CLOCK_MONOTONIC) the site may write its next line.
    next: AtomicU64,
    suppressed: AtomicU64,
}

impl Limit {
    #[allow(clippy::new_without_default)] // const, for a static in each `warn!`
    pub const fn new() -> Limit {
        Limit {
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written at `now` (ms): Some(how many were suppressed since the
    /// last one written), or None when this one is suppressed (and counted).
    pub fn admit(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Milliseconds of CLOCK_MONOTONIC.
pub fn now_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000
    })
}

/// Write a warning admitted by its site's `Limit`.
pub fn write_warning(line: Arguments<'_>, suppressed: u64) {
    if suppressed == 0 {
        eprintln!("lxcfs-uring: warning: {line}");
    } else {
        eprintln!(
            "lxcfs-uring: warning: {line} ({suppressed} more from here suppressed since the last)"
        );
    }
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { eprintln!("lxcfs-uring: {}", format_args!($($t)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => {{
        static LIMIT: $crate::log::Limit = $crate::log::Limit::new();
        if let Some(suppressed) = LIMIT.admit($crate::log::now_ms()) {
            $crate::log::write_warning(format_args!($($t)*), suppressed);
        }
    }};
}

#[macro_export]
macro_rules! warn_each {
    ($($t:tt)*) => { $crate::log::write_warning(format_args!($($t)*), 0) };
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::debug_enabled() {
            eprintln!("lxcfs-uring: debug: {}", format_args!($($t)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_of_what_was_suppressed() {
        let limit = Limit::new();
        let start = 1_000_000;
        assert_eq!(limit.admit(start), Some(0));
        for t in 1..1000 {
            assert_eq!(limit.admit(start + t), None);
        }
        assert_eq!(limit.admit(start + INTERVAL_MS - 1), None);
        assert_eq!(limit.admit(start + INTERVAL_MS), Some(1000));
        assert_eq!(limit.admit(start + INTERVAL_MS + 1), None);
        // A quiet site writes its next warning at once, with nothing to report.
        assert_eq!(limit.admit(start + 3 * INTERVAL_MS), Some(1));
        assert_eq!(limit.admit(start + 5 * INTERVAL_MS), Some(0));
    }

    #[test]
    fn every_warning_is_written_or_counted_under_concurrent_callers() {
        let limit = Limit::new();
        let (admitted, reported) = (AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(n) = limit.admit(7) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            reported.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 1);
        let rest = limit.admit(7 + INTERVAL_MS).unwrap();
        assert_eq!(reported.load(Ordering::Relaxed) + rest, 39_999);
    }
}
