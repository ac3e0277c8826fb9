//! /proc/swaps, and the swap figures /proc/meminfo shares with it.

use super::num;
use crate::cgroupfs::memory::MemoryInputs;

/// Swap as a container sees it, in kB, by lxcfs's rules: none without accounting or with
/// `-u`; the cgroup's swap limit (v2 swap.max; v1 the RAM+swap limit) capped at the host's
/// swap; with swappiness 0 only what is already swapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwapView {
    pub total_kb: u64,
    pub used_kb: u64,
}

impl SwapView {
    pub fn new(m: &MemoryInputs, host_swap_total_kb: u64, enabled: bool) -> SwapView {
        let Some(s) = m.swap.filter(|_| enabled) else {
            return SwapView::default();
        };
        let mut total_kb = s
            .limit
            .map_or(host_swap_total_kb, |l| l / 1024)
            .min(host_swap_total_kb);
        let used_kb = s.usage / 1024;
        if s.swappiness == Some(0) {
            total_kb = used_kb;
        }
        SwapView {
            total_kb,
            used_kb: used_kb.min(total_kb),
        }
    }

    pub fn free_kb(&self) -> u64 {
        self.total_kb - self.used_kb
    }
}

/// Render /proc/swaps: the header, then one virtual device when there is swap.
pub fn render(v: &SwapView, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n");
    if v.total_kb > 0 {
        out.extend_from_slice(b"none");
        out.extend_from_slice(&[b' '; 36]);
        out.extend_from_slice(b"virtual\t\t");
        num(out, v.total_kb);
        out.push(b'\t');
        num(out, v.used_kb);
        out.extend_from_slice(b"\t0\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::memory::SwapInputs;

    fn v1(limit: u64, memsw_limit: Option<u64>, usage: u64, swapped: u64) -> MemoryInputs {
        MemoryInputs {
            unified: false,
            limit: Some(limit),
            usage,
            swap: Some(SwapInputs {
                limit: memsw_limit,
                usage: swapped,
                swappiness: Some(60),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn v1_memsw_capped_at_host() {
        let m = v1(256 << 20, Some(512 << 20), 100 << 20, 50 << 20);
        let v = SwapView::new(&m, 1 << 30 >> 10, true);
        assert_eq!(
            v,
            SwapView {
                total_kb: 512 << 10,
                used_kb: 50 << 10
            }
        );
        let v = SwapView::new(&m, 100 << 10, true);
        assert_eq!(v.total_kb, 100 << 10);
        assert_eq!(v.free_kb(), 50 << 10);
        // no host swap: no swap at all
        assert_eq!(SwapView::new(&m, 0, true), SwapView::default());
        // -u
        assert_eq!(SwapView::new(&m, 1 << 20, false), SwapView::default());
    }

    #[test]
    fn swappiness_zero_shows_only_used() {
        let mut m = v1(256 << 20, None, 100 << 20, 0);
        m.swap.as_mut().unwrap().swappiness = Some(0);
        assert_eq!(SwapView::new(&m, 1 << 20, true), SwapView::default());
        m.swap.as_mut().unwrap().usage = 10 << 20;
        let v = SwapView::new(&m, 1 << 20, true);
        assert_eq!(
            v,
            SwapView {
                total_kb: 10 << 10,
                used_kb: 10 << 10
            }
        );
    }

    #[test]
    fn v2_and_no_accounting() {
        let m = MemoryInputs {
            unified: true,
            swap: Some(SwapInputs {
                limit: Some(64 << 20),
                usage: 1 << 20,
                swappiness: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            SwapView::new(&m, 1 << 20, true),
            SwapView {
                total_kb: 64 << 10,
                used_kb: 1 << 10
            }
        );
        let none = MemoryInputs::default();
        assert_eq!(SwapView::new(&none, 1 << 20, true), SwapView::default());
        // usage above the limit never makes free negative
        let m = MemoryInputs {
            unified: true,
            swap: Some(SwapInputs {
                limit: Some(1 << 20),
                usage: 9 << 20,
                swappiness: None,
            }),
            ..Default::default()
        };
        assert_eq!(SwapView::new(&m, 1 << 20, true).free_kb(), 0);
    }

    #[test]
    fn swaps_file() {
        let mut out = Vec::new();
        render(&SwapView::default(), &mut out);
        assert_eq!(out, b"Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n");
        out.clear();
        render(
            &SwapView {
                total_kb: 2048,
                used_kb: 5,
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "none                                    virtual\t\t2048\t5\t0"
        );
    }
}
