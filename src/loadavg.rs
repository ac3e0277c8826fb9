//! `-l/--enable-loadavg`: load averages per container.
//!
//! Every 5 seconds, for each container that read /proc/loadavg in the last ten minutes
//! (not every container on the host), the threads of its cpu cgroup are counted: running
//! (R) and uninterruptible (D) ones make its load, as the kernel counts the host's. The
//! cost is one read of the cgroup's thread list and one small read per thread of those
//! containers, never a scan of every task on the host.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cgroupfs::dir::Knob;
use crate::container::{Container, Containers, Controller, pidns};
use crate::kfile::{self, ProcPath, parse_u64};
use crate::render::loadavg::Load;

pub const TICK: Duration = Duration::from_secs(5);
/// A container that has not read its loadavg for this long is no longer sampled.
const FORGET_AFTER: Duration = Duration::from_secs(600);

struct Tracked {
    container: Arc<Container>,
    load: Load,
    last_read: Instant,
}

/// Tracked cgroups, by their path in the cpu hierarchy: containers sharing a cgroup are
/// sampled once.
#[derive(Default)]
pub struct LoadTracker {
    entries: Mutex<HashMap<String, Tracked>>,
    /// Averages handed over by a predecessor (an upgrade, a takeover), by cgroup path: a
    /// container's first read here continues from them instead of from zero.
    inherited: Mutex<HashMap<String, Load>>,
}

impl LoadTracker {
    /// The load of the cpu cgroup `path` (of container `c`) now; the first read starts
    /// tracking it (and shows `Load::FIRST` until the first sample).
    pub fn read(&self, path: &str, c: &Arc<Container>) -> Load {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(path) {
            let load = self
                .inherited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(path)
                .unwrap_or(Load::FIRST);
            map.insert(
                path.to_owned(),
                Tracked {
                    container: c.clone(),
                    load,
                    last_read: Instant::now(),
                },
            );
        }
        let Some(t) = map.get_mut(path) else {
            return Load::default();
        };
        if !Arc::ptr_eq(&t.container, c) {
            t.container = c.clone(); // rebuilt entry of the same namespace
        }
        t.last_read = Instant::now();
        t.load
    }

    /// The loads of every tracked cgroup, one `avg1 avg5 avg15 running total last_pid path`
    /// line each, then `blocked n path` where threads were in uninterruptible sleep at the
    /// last sample, for a successor's `inherit`.
    pub fn export(&self) -> String {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (path, t) in map.iter().filter(|(p, _)| !p.contains('\n')) {
            let [a, b, c] = t.load.averages();
            let l = &t.load;
            out.push_str(&format!(
                "{a} {b} {c} {} {} {} {path}\n",
                l.running, l.total, l.last_pid
            ));
            // A line of its own, which a predecessor without it never sends and a
            // successor without it skips as malformed.
            if l.blocked > 0 {
                out.push_str(&format!("blocked {} {path}\n", l.blocked));
            }
        }
        out
    }

    /// Take the averages a predecessor exported; how many. Malformed lines are skipped.
    pub fn inherit(&self, text: &str) -> usize {
        let mut inherited = self.inherited.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines() {
            if let Some((n, path)) = line
                .strip_prefix("blocked ")
                .and_then(|l| l.split_once(' '))
            {
                if let (Ok(n), Some(l)) = (n.parse(), inherited.get_mut(path)) {
                    l.blocked = n;
                }
                continue;
            }
            let mut f = line.splitn(7, ' ');
            let n: [Option<u64>; 6] = std::array::from_fn(|_| f.next()?.parse().ok());
            if let ([Some(a), Some(b), Some(c), Some(r), Some(t), Some(p)], Some(path)) =
                (n, f.next())
            {
                inherited.insert(path.to_owned(), Load::continuing([a, b, c], r, t, p));
            }
        }
        inherited.len()
    }

    /// One 5-second sample of every tracked container. Returns how many were sampled.
    pub fn tick(&self, containers: &Containers, scratch: &mut Vec<u8>) -> usize {
        let list: Vec<(String, Arc<Container>)> = {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, t| t.last_read.elapsed() < FORGET_AFTER && !t.container.has_exited());
            map.iter()
                .map(|(k, t)| (k.clone(), t.container.clone()))
                .collect()
        };
        for (key, c) in &list {
            let Ok(s) = sample(containers, c, scratch) else {
                continue;
            };
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = map.get_mut(key.as_str()) {
                t.load.tick(s.active, s.running, s.total, s.last_pid);
            }
        }
        list.len()
    }
}

struct Sample {
    active: u64,
    running: u64,
    total: u64,
    last_pid: u64,
}

fn sample(containers: &Containers, c: &Container, scratch: &mut Vec<u8>) -> io::Result<Sample> {
    let dir = c
        .cgroup(&containers.hier, Controller::Cpu)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    dir.read(Knob::Threads, scratch)?;
    let tids: Vec<u32> = kfile::lines(scratch)
        .filter_map(|l| parse_u64(l).and_then(|t| u32::try_from(t).ok()))
        .collect();
    let (mut running, mut blocked) = (0u64, 0u64);
    for &tid in &tids {
        if kfile::read_path(ProcPath::new(tid, "stat").as_cstr(), scratch).is_err() {
            continue; // exited meanwhile
        }
        match state(scratch) {
            Some(b'R') => running += 1,
            Some(b'D') => blocked += 1,
            _ => {}
        }
    }
    // The newest thread, as the container numbers it (pids grow with time in every
    // namespace): lxcfs shows the host's last pid here, which leaks host pids.
    let last_pid = tids
        .iter()
        .max()
        .and_then(|&t| pidns::pid_in_ns_of(c.init, t, scratch).ok())
        .map_or(0, u64::from);
    Ok(Sample {
        active: running + blocked,
        running,
        total: tids.len() as u64,
        last_pid,
    })
}

/// The state letter of a /proc/<tid>/stat line (after the last ')').
fn state(stat: &[u8]) -> Option<u8> {
    let close = memchr::memrchr(b')', stat)?;
    stat.get(close + 2).copied()
}

/// Sample every TICK until the process exits.
pub fn run(tracker: Arc<LoadTracker>, containers: &Containers) {
    let mut scratch = Vec::with_capacity(4096);
    loop {
        std::thread::sleep(TICK);
        let start = Instant::now();
        let n = tracker.tick(containers, &mut scratch);
        crate::debug!("loadavg tick: {n} containers in {:?}", start.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_are_handed_over_by_cgroup_path() {
        let t = LoadTracker::default();
        t.inherit(
            "2048 1024 512 1 9 42 /lxc/c 1\n7 7\nx y z 1 2 3 /bad\n100 200 300 0 1 5 /other\n",
        );
        let inherited = t.inherited.lock().unwrap();
        assert_eq!(inherited["/lxc/c 1"].averages(), [2048, 1024, 512]);
        assert_eq!(
            inherited["/lxc/c 1"].blocked, 0,
            "from a predecessor without it"
        );
        assert_eq!(inherited["/other"].averages(), [100, 200, 300]);
        assert_eq!(inherited.len(), 2, "malformed lines are skipped");
    }

    #[test]
    fn blocked_threads_are_handed_over() {
        let t = LoadTracker::default();
        t.inherit(
            "1 2 3 4 9 42 /lxc/c 1\nblocked 3 /lxc/c 1\nblocked x /lxc/c 1\nblocked 5 /gone\n",
        );
        let inherited = t.inherited.lock().unwrap();
        assert_eq!(inherited["/lxc/c 1"].blocked, 3);
        assert_eq!(inherited.len(), 1);
    }

    #[test]
    fn state_letter() {
        assert_eq!(state(b"12 (a) b) R 1 2"), Some(b'R'));
        assert_eq!(state(b"12 (x) D 1"), Some(b'D'));
        assert_eq!(state(b"12 (x)"), None);
        assert_eq!(state(b""), None);
    }
}
