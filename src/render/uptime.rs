//! /proc/uptime: the age of the container's init, and idle time net of its CPU use.

use super::centis;

/// Inputs, all read at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UptimeInputs {
    /// CLOCK_BOOTTIME now, in nanoseconds.
    pub boottime_ns: u64,
    /// Start of the container's init since boot, in nanoseconds (field 22 of its stat).
    pub init_start_ns: u64,
    /// CPU time the container's cgroup used, in nanoseconds (None when unknown).
    pub cpu_usage_ns: Option<u64>,
}

/// `uptime idle\n`, both with two decimals. Idle is uptime minus the container's CPU time,
/// as lxcfs computes it, and never below zero.
pub fn render(i: &UptimeInputs, out: &mut Vec<u8>) {
    let up_ns = i.boottime_ns.saturating_sub(i.init_start_ns);
    let idle_ns = up_ns.saturating_sub(i.cpu_usage_ns.unwrap_or(0));
    centis(out, up_ns / 10_000_000);
    out.push(b' ');
    centis(out, idle_ns / 10_000_000);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(i: UptimeInputs) -> String {
        let mut out = Vec::new();
        render(&i, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn age_and_idle() {
        let s = 1_000_000_000u64;
        let i = UptimeInputs {
            boottime_ns: 1000 * s + 5 * s / 100,
            init_start_ns: 400 * s,
            cpu_usage_ns: Some(100 * s),
        };
        assert_eq!(r(i), "600.05 500.05\n");
        let i = UptimeInputs {
            cpu_usage_ns: None,
            ..i
        };
        assert_eq!(r(i), "600.05 600.05\n");
    }

    #[test]
    fn clamps() {
        let i = UptimeInputs {
            boottime_ns: 5,
            init_start_ns: 10,
            cpu_usage_ns: Some(u64::MAX),
        };
        assert_eq!(r(i), "0.00 0.00\n");
    }
}
