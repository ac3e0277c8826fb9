//! /proc/stat: per-CPU lines from the container's own CPU time, the `cpu ` total, and the
//! host's other lines (btime, ctxt, processes, ...) unchanged.
//!
//! Idle is what the container did not use of the time that passed: for each shown CPU,
//! the host CPU's total ticks (times the container's share with a CFS quota) less the
//! container's busy ticks. Every counter is kept per container and never shown going
//! backwards.

use super::num;
use crate::cgroupfs::cpu::CpuTime;
use crate::kfile::{lines, parse_u64};

/// How the container's CPU time is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usage<'a> {
    /// Per host CPU (v1 cpuacct.usage_all), indexed by host CPU id.
    PerCpu(&'a [CpuTime]),
    /// Only in total (v2 cpu.stat): spread over the shown CPUs as the host's CPUs were busy.
    Total(CpuTime),
    /// No cpu accounting controller: the host's lines of the shown CPUs.
    Unknown,
}

pub struct StatInputs<'a> {
    pub host: &'a [u8],
    /// The host CPUs the container may use (its cpuset), ascending.
    pub cpuset: &'a [u32],
    /// How many of them it is shown (all, or fewer with --enable-cfs).
    pub shown: usize,
    /// Show them as cpu0.. (--enable-cfs) rather than by their host ids.
    pub renumber: bool,
    pub usage: Usage<'a>,
    /// The CFS quota in CPUs (quota / period), with --enable-cfs.
    pub quota_cpus: Option<f64>,
    /// USER_HZ
    pub ticks_per_sec: u64,
    /// The container's own `procs_running` and `procs_blocked`; the host's lines when None.
    pub procs: Option<Procs>,
}

/// Threads of the container running (R) and in uninterruptible sleep (D).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Procs {
    pub running: u64,
    pub blocked: u64,
}

/// What was shown last time, per container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatHistory {
    cpus: Vec<Shown>,
    /// v2: the total already spread over the CPUs.
    spread: CpuTime,
}

impl StatHistory {
    /// One space-free word a successor process takes back with `from_word`:
    /// `spread_user,spread_system` then `;host_id,user,system,idle,host_busy` per CPU.
    pub fn to_word(&self) -> String {
        let mut w = format!("{},{}", self.spread.user, self.spread.system);
        for c in &self.cpus {
            w.push_str(&format!(
                ";{},{},{},{},{}",
                c.host_id, c.user, c.system, c.idle, c.host_busy
            ));
        }
        w
    }

    /// None for a malformed word.
    pub fn from_word(w: &str) -> Option<StatHistory> {
        let mut parts = w.split(';');
        let mut spread = parts.next()?.split(',').map(|v| v.parse::<u64>().ok());
        let spread = CpuTime {
            user: spread.next()??,
            system: spread.next()??,
        };
        let cpus = parts
            .map(|p| {
                let mut f = p.split(',').map(|v| v.parse::<u64>().ok());
                Some(Shown {
                    host_id: u32::try_from(f.next()??).ok()?,
                    user: f.next()??,
                    system: f.next()??,
                    idle: f.next()??,
                    host_busy: f.next()??,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(StatHistory { cpus, spread })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Shown {
    host_id: u32,
    user: u64,
    system: u64,
    idle: u64,
    /// The host CPU's busy ticks when last shown (v2 spreading weights).
    host_busy: u64,
}

/// The ten counters of a host `cpuN` line, in ticks.
#[derive(Clone, Copy, Debug, Default)]
struct HostCpu {
    fields: [u64; 10],
}

impl HostCpu {
    fn total(&self) -> u64 {
        // guest and guest_nice are already counted in user and nice
        self.fields[..8]
            .iter()
            .fold(0u64, |a, &b| a.saturating_add(b))
    }
    fn busy(&self) -> u64 {
        self.total()
            .saturating_sub(self.fields[3])
            .saturating_sub(self.fields[4])
    }
}

/// `cpuN f1 f2 ...` -> (N, counters); None for the `cpu ` total and other lines.
fn host_cpu_line(line: &[u8]) -> Option<(u32, HostCpu)> {
    let rest = line.strip_prefix(b"cpu")?;
    let mut f = rest
        .split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let id = u32::try_from(parse_u64(f.next()?)?).ok()?;
    let mut cpu = HostCpu::default();
    for slot in cpu.fields.iter_mut() {
        *slot = f.next().and_then(parse_u64).unwrap_or(0);
    }
    Some((id, cpu))
}

/// Buffers a render needs, kept by the caller between renders so none allocates.
#[derive(Default)]
pub struct StatScratch {
    /// Host counters indexed by CPU id.
    host: Vec<Option<HostCpu>>,
    shown: Vec<u32>,
    /// (user, system) ticks per shown CPU; None where unknown.
    busy: Vec<Option<(u64, u64)>>,
    weights: Vec<u64>,
    fields: Vec<[u64; 10]>,
}

pub fn render(
    i: &StatInputs<'_>,
    history: &mut StatHistory,
    s: &mut StatScratch,
    out: &mut Vec<u8>,
) {
    // Indexed by CPU id (ids are below 8192, as cpulist enforces for cpusets).
    s.host.clear();
    for (id, cpu) in lines(i.host).filter_map(host_cpu_line) {
        let Ok(id) = usize::try_from(id) else {
            continue;
        };
        if id < 8192 {
            if s.host.len() <= id {
                s.host.resize(id + 1, None);
            }
            s.host[id] = Some(cpu);
        }
    }
    let host = &s.host;
    let host_of = |id: u32| host.get(id as usize).copied().flatten();
    s.shown.clear();
    s.shown.extend(
        i.cpuset
            .iter()
            .copied()
            .filter(|&c| host_of(c).is_some())
            .take(i.shown.max(1)),
    );
    let shown = &s.shown;
    if history
        .cpus
        .iter()
        .map(|c| c.host_id)
        .ne(shown.iter().copied())
    {
        *history = StatHistory::default();
        history.cpus = shown
            .iter()
            .map(|&host_id| Shown {
                host_id,
                ..Shown::default()
            })
            .collect();
    }
    let ns_per_tick = 1_000_000_000 / i.ticks_per_sec.max(1);
    container_busy(
        i,
        shown,
        &host_of,
        history,
        ns_per_tick,
        &mut s.weights,
        &mut s.busy,
    );
    let share = match i.quota_cpus {
        Some(q) if !shown.is_empty() => (q / shown.len() as f64).min(1.0),
        _ => 1.0,
    };
    let mut total = [0u64; 10];
    s.fields.clear();
    for ((&host_id, slot), busy) in shown.iter().zip(history.cpus.iter_mut()).zip(&s.busy) {
        let h = host_of(host_id).unwrap_or_default();
        let fields = match *busy {
            None => h.fields,
            Some((user, system)) => {
                let capacity = (h.total() as f64 * share) as u64;
                let idle = capacity.saturating_sub(user.saturating_add(system));
                slot.user = slot.user.max(user);
                slot.system = slot.system.max(system);
                slot.idle = slot.idle.max(idle);
                [slot.user, 0, slot.system, slot.idle, 0, 0, 0, 0, 0, 0]
            }
        };
        slot.host_busy = h.busy();
        for (t, f) in total.iter_mut().zip(fields) {
            *t = t.saturating_add(f);
        }
        s.fields.push(fields);
    }
    out.extend_from_slice(b"cpu ");
    counters(out, &total);
    for (k, (&host_id, fields)) in shown.iter().zip(&s.fields).enumerate() {
        out.extend_from_slice(b"cpu");
        num(
            out,
            if i.renumber {
                k as u64
            } else {
                u64::from(host_id)
            },
        );
        counters(out, fields);
    }
    for line in lines(i.host).filter(|l| !l.starts_with(b"cpu")) {
        let own = i.procs.and_then(|p| {
            let key = line.split(|&b| b == b' ').next()?;
            match key {
                b"procs_running" => Some((key, p.running)),
                b"procs_blocked" => Some((key, p.blocked)),
                _ => None,
            }
        });
        match own {
            Some((key, v)) => {
                out.extend_from_slice(key);
                out.push(b' ');
                num(out, v);
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
}

/// Fill `busy` with the (user, system) ticks of the container on each shown CPU; None
/// where unknown.
fn container_busy(
    i: &StatInputs<'_>,
    shown: &[u32],
    host_of: &dyn Fn(u32) -> Option<HostCpu>,
    history: &mut StatHistory,
    ns_per_tick: u64,
    weights: &mut Vec<u64>,
    busy: &mut Vec<Option<(u64, u64)>>,
) {
    let ticks = |ns: u64| ns / ns_per_tick;
    busy.clear();
    match &i.usage {
        Usage::Unknown => busy.resize(shown.len(), None),
        Usage::PerCpu(per) => {
            let of = |c: u32| per.get(c as usize).copied().unwrap_or_default();
            // Time spent on CPUs the container may use but is not shown (--enable-cfs)
            // is spread evenly over the shown ones. (`shown` is ascending, as the cpuset.)
            let hidden = i
                .cpuset
                .iter()
                .filter(|c| shown.binary_search(c).is_err())
                .fold(CpuTime::default(), |a, &c| CpuTime {
                    user: a.user.saturating_add(of(c).user),
                    system: a.system.saturating_add(of(c).system),
                });
            let n = shown.len().max(1) as u64;
            busy.extend(shown.iter().map(|&c| {
                let t = of(c);
                Some((
                    ticks(t.user + hidden.user / n),
                    ticks(t.system + hidden.system / n),
                ))
            }));
        }
        Usage::Total(t) => {
            // Spread what is new since last time by how busy each host CPU was meanwhile.
            let delta = CpuTime {
                user: t.user.saturating_sub(history.spread.user),
                system: t.system.saturating_sub(history.spread.system),
            };
            history.spread = CpuTime {
                user: history.spread.user.max(t.user),
                system: history.spread.system.max(t.system),
            };
            weights.clear();
            weights.extend(
                shown
                    .iter()
                    .zip(&history.cpus)
                    .map(|(&c, s)| host_of(c).map_or(0, |h| h.busy().saturating_sub(s.host_busy))),
            );
            let sum: u64 = weights.iter().sum();
            let n = shown.len().max(1) as u128;
            busy.extend(weights.iter().zip(&history.cpus).map(|(&w, s)| {
                let part = |v: u64| -> u64 {
                    let v = u128::from(v);
                    let p = if sum == 0 {
                        v / n
                    } else {
                        v * u128::from(w) / u128::from(sum)
                    };
                    u64::try_from(p).unwrap_or(u64::MAX)
                };
                Some((
                    s.user.saturating_add(ticks(part(delta.user))),
                    s.system.saturating_add(ticks(part(delta.system))),
                ))
            }));
        }
    }
}

fn counters(out: &mut Vec<u8>, fields: &[u64; 10]) {
    for f in fields {
        out.push(b' ');
        num(out, *f);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #[test]
    fn history_crosses_to_a_successor_as_one_word() {
        let h = StatHistory {
            cpus: vec![
                Shown {
                    host_id: 3,
                    user: 10,
                    system: 20,
                    idle: 30,
                    host_busy: 40,
                },
                Shown::default(),
            ],
            spread: CpuTime { user: 7, system: 8 },
        };
        let w = h.to_word();
        assert!(!w.contains(' ') && !w.contains('\n'));
        assert_eq!(StatHistory::from_word(&w), Some(h));
        assert_eq!(StatHistory::from_word("0,0"), Some(StatHistory::default()));
        for bad in ["", "1", "1,2;3,4", "x,1", "1,2;1,2,3,4,x"] {
            assert_eq!(StatHistory::from_word(bad), None, "{bad}");
        }
    }

    use super::*;

    const HOST: &[u8] = b"cpu  300 0 300 2000 0 0 0 0 0 0\n\
cpu0 100 0 100 1000 0 0 0 0 0 0\n\
cpu1 200 0 200 1000 0 0 0 0 0 0\n\
intr 12345 1 2\nctxt 999\nbtime 1700000000\nprocesses 42\nprocs_running 1\nprocs_blocked 0\n\
softirq 5 1 1\n";

    fn inputs(usage: Usage<'_>) -> StatInputs<'_> {
        StatInputs {
            host: HOST,
            cpuset: &[0, 1],
            shown: 2,
            renumber: false,
            usage,
            quota_cpus: None,
            ticks_per_sec: 100,
            procs: None,
        }
    }

    fn cpu_lines(text: &str) -> Vec<Vec<u64>> {
        text.lines()
            .filter(|l| l.starts_with("cpu"))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().unwrap())
                    .collect()
            })
            .collect()
    }

    fn run(i: &StatInputs<'_>, h: &mut StatHistory) -> String {
        let mut out = Vec::new();
        render(i, h, &mut StatScratch::default(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn v1_per_cpu_usage_and_idle() {
        let tick = 10_000_000; // ns per tick at 100 Hz
        let per = vec![
            CpuTime {
                user: 10 * tick,
                system: 5 * tick,
            },
            CpuTime {
                user: 20 * tick,
                system: 0,
            },
        ];
        let mut h = StatHistory::default();
        let text = run(&inputs(Usage::PerCpu(&per)), &mut h);
        let c = cpu_lines(&text);
        assert_eq!(c[1], vec![10, 0, 5, 1200 - 15, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c[2], vec![20, 0, 0, 1400 - 20, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            c[0],
            vec![30, 0, 5, 1185 + 1380, 0, 0, 0, 0, 0, 0],
            "total line sums"
        );
        assert!(text.starts_with("cpu  30 "), "two spaces after cpu: {text}");
        assert!(text.contains("btime 1700000000\n") && text.contains("ctxt 999\n"));
        assert!(text.ends_with("softirq 5 1 1\n"));
    }

    #[test]
    fn counters_never_go_backwards() {
        let tick = 10_000_000;
        let mut h = StatHistory::default();
        run(
            &inputs(Usage::PerCpu(
                &[CpuTime {
                    user: 500 * tick,
                    system: 0,
                }; 2],
            )),
            &mut h,
        );
        // usage now larger than the host's busy ticks: idle would go negative, then drop
        let text = run(
            &inputs(Usage::PerCpu(
                &[CpuTime {
                    user: 5000 * tick,
                    system: 0,
                }; 2],
            )),
            &mut h,
        );
        let c = cpu_lines(&text);
        assert_eq!(c[1][3], 1200 - 500, "idle kept at its last value, not 0");
        // usage going down (a recreated cgroup) does not lower user
        let text = run(&inputs(Usage::PerCpu(&[CpuTime::default(); 2])), &mut h);
        assert_eq!(cpu_lines(&text)[1][0], 5000);
    }

    #[test]
    fn v2_total_is_spread_by_host_busy() {
        let mut h = StatHistory::default();
        let t = CpuTime {
            user: 300 * 10_000_000,
            system: 0,
        };
        let c = cpu_lines(&run(&inputs(Usage::Total(t)), &mut h));
        // host busy 200 and 400: a third and two thirds
        assert_eq!((c[1][0], c[2][0]), (100, 200));
        // nothing new: unchanged
        let c2 = cpu_lines(&run(&inputs(Usage::Total(t)), &mut h));
        assert_eq!(c2, c);
    }

    #[test]
    fn cpuset_renumbering_and_cfs() {
        let tick = 10_000_000;
        let per = vec![
            CpuTime {
                user: 10 * tick,
                system: 0,
            },
            CpuTime {
                user: 30 * tick,
                system: 0,
            },
        ];
        let mut i = inputs(Usage::PerCpu(&per));
        i.cpuset = &[1];
        i.shown = 1;
        let text = run(&i, &mut StatHistory::default());
        assert!(
            text.contains("\ncpu1 30 "),
            "host numbering without cfs: {text}"
        );
        assert!(!text.contains("\ncpu0 "));
        // --enable-cfs with half a CPU over both: one CPU shown as cpu0, carrying the hidden one's time
        let both = [
            CpuTime {
                user: 10 * tick,
                system: 0,
            },
            CpuTime {
                user: 30 * tick,
                system: 0,
            },
        ];
        let mut i = inputs(Usage::PerCpu(&both));
        i.shown = 1;
        i.renumber = true;
        i.quota_cpus = Some(0.5);
        let c = cpu_lines(&run(&i, &mut StatHistory::default()));
        assert_eq!(c.len(), 2);
        assert_eq!(c[1][0], 40);
        assert_eq!(
            c[1][3],
            600 - 40,
            "half of cpu0's 1200 ticks, less the busy time"
        );
    }

    #[test]
    fn unknown_usage_filters_host_lines() {
        let mut i = inputs(Usage::Unknown);
        i.cpuset = &[1];
        i.shown = 1;
        let c = cpu_lines(&run(&i, &mut StatHistory::default()));
        assert_eq!(c[1], vec![200, 0, 200, 1000, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c[0], c[1]);
    }

    #[test]
    fn a_1024_cpu_host() {
        let mut host = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
        for i in 0..1024 {
            host.push_str(&format!("cpu{i} 10 0 10 1000 0 0 0 0 0 0\n"));
        }
        host.push_str("btime 1\n");
        let cpuset: Vec<u32> = (0..1024).collect();
        let usage = Usage::PerCpu(
            &[CpuTime {
                user: 50_000_000,
                system: 0,
            }; 1024],
        );
        let i = StatInputs {
            host: host.as_bytes(),
            cpuset: &cpuset,
            shown: 1024,
            renumber: false,
            usage,
            quota_cpus: None,
            ticks_per_sec: 100,
            procs: None,
        };
        let text = run(&i, &mut StatHistory::default());
        let c = cpu_lines(&text);
        assert_eq!(c.len(), 1025);
        assert_eq!(c[1024], vec![5, 0, 0, 1015, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c[0][0], 5 * 1024);
    }

    #[test]
    fn procs_are_the_containers_where_known() {
        let mut h = StatHistory::default();
        let mut i = inputs(Usage::Unknown);
        let text = run(&i, &mut h);
        assert!(
            text.contains("\nprocs_running 1\nprocs_blocked 0\n"),
            "the host's"
        );
        i.procs = Some(Procs {
            running: 3,
            blocked: u64::MAX,
        });
        let text = run(&i, &mut h);
        assert!(
            text.contains("\nprocesses 42\nprocs_running 3\nprocs_blocked 18446744073709551615\nsoftirq 5 1 1\n"),
            "{text}"
        );
        // a host line that only starts like one is left alone
        i.host = b"cpu  1 0 1 1 0 0 0 0 0 0\nprocs_running_x 9\nprocs_blocked";
        let text = run(&i, &mut h);
        assert!(
            text.ends_with("\nprocs_running_x 9\nprocs_blocked 18446744073709551615\n"),
            "{text}"
        );
    }

    #[test]
    fn hostile_host_text() {
        let mut h = StatHistory::default();
        for host in [
            &b""[..],
            b"cpu",
            b"cpu0",
            b"cpux 1 2",
            b"cpu0 99999999999999999999999 1\n",
            b"cpu4294967296 1\n",
        ] {
            let mut i = inputs(Usage::Total(CpuTime {
                user: u64::MAX,
                system: u64::MAX,
            }));
            i.host = host;
            let mut out = Vec::new();
            render(&i, &mut h, &mut StatScratch::default(), &mut out);
            assert!(out.starts_with(b"cpu "));
        }
    }
}
