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
}

impl LoadTracker {
    /// The load of the cpu cgroup `path` (of container `c`) now; the first read starts
    /// tracking it (and shows zeros, as lxcfs does, until the first sample).
    pub fn read(&self, path: &str, c: &Arc<Container>) -> Load {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(path) {
            map.insert(
                path.to_owned(),
                Tracked {
                    container: c.clone(),
                    load: Load::default(),
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
    fn state_letter() {
        assert_eq!(state(b"12 (a) b) R 1 2"), Some(b'R'));
        assert_eq!(state(b"12 (x) D 1"), Some(b'D'));
        assert_eq!(state(b"12 (x)"), None);
        assert_eq!(state(b""), None);
    }
}
