//! The cpu, cpuacct and cpuset controllers: which CPUs a container may use, its CFS
//! quota, and how much CPU time it used.

use std::io;

use super::dir::{CgroupDir, Knob};
use crate::cpulist;
use crate::kfile::{self, parse_u64};

/// Fill `cpus` with the CPUs of the nearest cpuset (this cgroup's, else its parent's, ...)
/// that is not empty. False when the cgroup has none at any level.
pub fn cpuset(dir: &CgroupDir, buf: &mut Vec<u8>, cpus: &mut Vec<u32>) -> io::Result<bool> {
    nearest_list(dir, Knob::CpusetCpus, buf, cpus)
}

/// Fill `nodes` with the memory nodes of the nearest cpuset that is not empty, as `cpuset`.
pub fn mems(dir: &CgroupDir, buf: &mut Vec<u8>, nodes: &mut Vec<u32>) -> io::Result<bool> {
    nearest_list(dir, Knob::CpusetMems, buf, nodes)
}

fn nearest_list(
    dir: &CgroupDir,
    knob: Knob,
    buf: &mut Vec<u8>,
    out: &mut Vec<u32>,
) -> io::Result<bool> {
    let found = dir.read_nearest(knob, buf, |t| {
        let t = t.trim_ascii();
        !t.is_empty()
    })?;
    Ok(found && cpulist::parse_into(buf, out) && !out.is_empty())
}

/// A CFS bandwidth limit: `quota` µs of CPU time every `period` µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub quota: u64,
    pub period: u64,
}

impl Quota {
    /// ceil(quota / period): how many CPUs the container can keep busy (at least 1).
    pub fn cpus(&self) -> u32 {
        u32::try_from(self.quota.div_ceil(self.period.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    fn tighter(self, other: Quota) -> Quota {
        // a/b < c/d  <=>  a*d < c*b, in u128 so nothing overflows
        let lhs = u128::from(self.quota) * u128::from(other.period);
        let rhs = u128::from(other.quota) * u128::from(self.period);
        if lhs <= rhs { self } else { other }
    }
}

/// v2 cpu.max: `max 100000` (None) or `50000 100000`. EIO (malformed) on anything else.
pub fn parse_cpu_max(text: &[u8]) -> io::Result<Option<Quota>> {
    let mut f = text
        .split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let (q, p) = (
        f.next().ok_or_else(malformed)?,
        f.next().ok_or_else(malformed)?,
    );
    let period = parse_u64(p).filter(|&p| p > 0).ok_or_else(malformed)?;
    if q == b"max" {
        return Ok(None);
    }
    let quota = parse_u64(q).ok_or_else(malformed)?;
    Ok(Some(Quota { quota, period }))
}

/// v1 cpu.cfs_quota_us: -1 (None) or microseconds.
fn parse_cfs_quota(text: &[u8]) -> io::Result<Option<u64>> {
    let t = text.trim_ascii();
    if t == b"-1" {
        return Ok(None);
    }
    parse_u64(t).map(Some).ok_or_else(malformed)
}

/// The tightest CFS quota over the cgroup and its ancestors (lxcfs 6.x looks at the cgroup
/// alone; a limit set on a parent binds the container all the same).
pub fn quota(dir: &CgroupDir, buf: &mut Vec<u8>) -> io::Result<Option<Quota>> {
    let mut best: Option<Quota> = None;
    for level in dir.levels() {
        let q = if dir.unified {
            if !level.read(Knob::CpuMax, buf)? {
                continue;
            }
            parse_cpu_max(buf)?
        } else {
            if !level.read(Knob::CfsQuota, buf)? {
                continue;
            }
            match parse_cfs_quota(buf)? {
                None => None,
                Some(quota) => {
                    level.read(Knob::CfsPeriod, buf)?;
                    let period = parse_u64(buf).filter(|&p| p > 0).ok_or_else(malformed)?;
                    Some(Quota { quota, period })
                }
            }
        };
        if let Some(q) = q {
            best = Some(best.map_or(q, |b| b.tighter(q)));
        }
    }
    Ok(best)
}

/// CPU time of a cgroup, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: u64,
    pub system: u64,
}

impl CpuTime {
    pub fn total(&self) -> u64 {
        self.user.saturating_add(self.system)
    }
}

/// v1 cpuacct.usage_all: `cpu user system` then one line per CPU, in ns, into `v`
/// indexed by CPU id.
pub fn parse_usage_all(text: &[u8], v: &mut Vec<CpuTime>) {
    v.clear();
    for line in kfile::lines(text).skip(1) {
        let mut f = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty());
        let (Some(cpu), Some(user), Some(system)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Some(cpu), Some(user), Some(system)) =
            (parse_u64(cpu), parse_u64(user), parse_u64(system))
        else {
            continue;
        };
        let Ok(cpu) = usize::try_from(cpu) else {
            continue;
        };
        if cpu >= 8192 {
            continue;
        }
        if v.len() <= cpu {
            v.resize(cpu + 1, CpuTime::default());
        }
        v[cpu] = CpuTime { user, system };
    }
}

/// v2 cpu.stat's user_usec and system_usec, in ns.
pub fn parse_cpu_stat(text: &[u8]) -> Option<CpuTime> {
    let mut user = None;
    let mut system = None;
    for line in kfile::lines(text) {
        if let Some(v) = line.strip_prefix(b"user_usec ") {
            user = parse_u64(v);
        } else if let Some(v) = line.strip_prefix(b"system_usec ") {
            system = parse_u64(v);
        }
    }
    Some(CpuTime {
        user: user?.checked_mul(1000)?,
        system: system?.checked_mul(1000)?,
    })
}

fn malformed() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max(b"max 100000\n").unwrap(), None);
        assert_eq!(
            parse_cpu_max(b"50000 100000\n").unwrap(),
            Some(Quota {
                quota: 50000,
                period: 100000
            })
        );
        for bad in [&b""[..], b"max", b"50000 0", b"x 100", b"1 y"] {
            assert!(parse_cpu_max(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_cpus_and_tightest() {
        let half = Quota {
            quota: 50000,
            period: 100000,
        };
        let one_half = Quota {
            quota: 150000,
            period: 100000,
        };
        assert_eq!(half.cpus(), 1);
        assert_eq!(one_half.cpus(), 2);
        assert_eq!(
            Quota {
                quota: 0,
                period: 100
            }
            .cpus(),
            1
        );
        assert_eq!(half.tighter(one_half), half);
        assert_eq!(one_half.tighter(half), half);
        let odd = Quota {
            quota: 30000,
            period: 50000,
        }; // 0.6
        assert_eq!(odd.tighter(half), half);
        assert_eq!(parse_cfs_quota(b"-1\n").unwrap(), None);
        assert_eq!(parse_cfs_quota(b"25000\n").unwrap(), Some(25000));
        assert!(parse_cfs_quota(b"-2").is_err());
    }

    #[test]
    fn usage_all() {
        let t = b"cpu user system\n0 100 200\n1 300 400\n3 5 6\nbad line\n99999 1 1\n";
        let mut v = Vec::new();
        parse_usage_all(t, &mut v);
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[1],
            CpuTime {
                user: 300,
                system: 400
            }
        );
        assert_eq!(v[2], CpuTime::default());
        assert_eq!(v[3].total(), 11);
        parse_usage_all(b"", &mut v);
        assert!(v.is_empty());
    }

    #[test]
    fn cpu_stat_v2() {
        let t = b"usage_usec 300\nuser_usec 100\nsystem_usec 200\nnr_periods 0\n";
        assert_eq!(
            parse_cpu_stat(t),
            Some(CpuTime {
                user: 100_000,
                system: 200_000
            })
        );
        assert_eq!(parse_cpu_stat(b"usage_usec 1\n"), None);
    }
}
