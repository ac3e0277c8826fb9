//! /proc/loadavg per container: the kernel's fixed-point exponential decay over the
//! container's runnable and uninterruptible threads, sampled every 5 seconds.

use super::num;

const FSHIFT: u32 = 11;
const FIXED_1: u64 = 1 << FSHIFT;
/// 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) in fixed point, as include/linux/sched/loadavg.h.
const EXP: [u64; 3] = [1884, 2014, 2037];

/// One container's load, as the kernel keeps the host's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    avg: [u64; 3],
    pub running: u64,
    /// Threads in uninterruptible sleep at the last sample.
    pub blocked: u64,
    pub total: u64,
    pub last_pid: u64,
}

/// The kernel's calc_load().
fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
    let mut new = load
        .saturating_mul(exp)
        .saturating_add(active.saturating_mul(FIXED_1 - exp));
    if active >= load {
        new = new.saturating_add(FIXED_1 - 1);
    }
    new / FIXED_1
}

impl Load {
    /// A container's first read, before any sample: no load yet, and the one thread it
    /// is known to have (its init, pid 1 as it numbers it) running, as the kernel counts
    /// the reader (lxcfs shows `0/1` and the init's host pid).
    pub const FIRST: Load = Load {
        avg: [0; 3],
        running: 1,
        blocked: 0,
        total: 1,
        last_pid: 1,
    };

    /// The three averages in the kernel's fixed point (FSHIFT bits of fraction).
    pub fn averages(&self) -> [u64; 3] {
        self.avg
    }

    /// A load that continues from what a predecessor process computed.
    pub fn continuing(avg: [u64; 3], running: u64, total: u64, last_pid: u64) -> Load {
        Load {
            avg,
            running,
            blocked: 0,
            total,
            last_pid,
        }
    }

    /// A 5-second sample: `active` threads running or in uninterruptible sleep.
    pub fn tick(&mut self, active: u64, running: u64, total: u64, last_pid: u64) {
        self.blocked = active.saturating_sub(running);
        let active = active.saturating_mul(FIXED_1);
        for (avg, exp) in self.avg.iter_mut().zip(EXP) {
            *avg = calc_load(*avg, exp, active);
        }
        self.running = running;
        self.total = total;
        self.last_pid = last_pid;
    }
}

/// `0.52 0.58 0.59 1/467 1234\n`
pub fn render(l: &Load, out: &mut Vec<u8>) {
    for (i, avg) in l.avg.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        // LOAD_INT and LOAD_FRAC, with the kernel's rounding (it adds FIXED_1/200).
        let a = avg + FIXED_1 / 200;
        num(out, a >> FSHIFT);
        out.push(b'.');
        let frac = ((a & (FIXED_1 - 1)) * 100) >> FSHIFT;
        if frac < 10 {
            out.push(b'0');
        }
        num(out, frac);
    }
    out.push(b' ');
    num(out, l.running);
    out.push(b'/');
    num(out, l.total);
    out.push(b' ');
    num(out, l.last_pid);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Load) -> String {
        let mut out = Vec::new();
        render(l, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn starts_at_zero() {
        assert_eq!(text(&Load::default()), "0.00 0.00 0.00 0/0 0\n");
    }

    #[test]
    fn converges_like_the_kernel() {
        let mut l = Load::default();
        l.tick(2, 2, 10, 77);
        // one sample of 2: 1-min average 2*(1-1884/2048) = 0.16
        assert_eq!(text(&l), "0.16 0.03 0.01 2/10 77\n");
        for _ in 0..12 * 10 {
            l.tick(2, 2, 10, 77);
        }
        let t = text(&l);
        // ten minutes of 2: the 1-min average is 2, the 5-min 2*(1-e^-2) = 1.73
        assert!(t.starts_with("2.00 1.7"), "{t}");
        // and decays when idle
        for _ in 0..12 * 10 {
            l.tick(0, 0, 10, 77);
        }
        // 1.75*e^-2 = 0.24
        assert!(text(&l).starts_with("0.00 0.2"), "{}", text(&l));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut l = Load::default();
        l.tick(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        let _ = text(&l);
    }
}
