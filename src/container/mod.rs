//! Who is asking: the container of a request's caller, with its cgroups, cached per pid
//! namespace.
//!
//! As in lxcfs, a container is the init (pid 1) of the caller's pid namespace; its cgroups
//! decide what the caller sees. A caller in the daemon's own pid namespace (or one the
//! kernel could not name, pid 0) is its own container.

pub mod creds;
pub mod pidns;

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use crate::cgroupfs::dir::{CgroupDir, Knob};
use crate::cgroupfs::membership;
use crate::cgroupfs::memory::StatCache;
use crate::cgroupfs::mounts::Hierarchies;
use crate::kfile::{self, ProcPath};
use crate::render::stat::StatHistory;
use crate::render::vmstat::VmstatHistory;
use crate::stats::{self, Counter};

/// The controllers a view may consult.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpuacct,
    Cpu,
    Cpuset,
    Blkio,
    /// The unified hierarchy, whatever it controls: every cgroup of it has PSI files.
    Pressure,
}

const CONTROLLERS: usize = 6;

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpu => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Blkio => "blkio",
            // No v1 hierarchy has it: its path is the unified one.
            Controller::Pressure => "pressure",
        }
    }

    /// On cgroup v2 the same data lives under another controller's name.
    fn v2_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpuacct | Controller::Cpu => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Blkio => "io",
            Controller::Pressure => "pressure",
        }
    }
}

/// How long a container's cgroup membership is trusted before /proc/<init>/cgroup is read
/// again (an init moved to another cgroup is seen within this time).
const RECHECK_MS: u64 = 1000;
/// The cache is swept of exited inits once it holds this many entries, then again each
/// time it has doubled since the last sweep (amortised O(1) per new container).
const FIRST_SWEEP: usize = 256;

/// One container: its init and lazily opened cgroup directories.
#[derive(Debug)]
pub struct Container {
    /// The pid namespace it is cached under (0: not cached).
    ns: u64,
    /// The process whose cgroups are the container's: the init of the caller's pid
    /// namespace, or the caller itself in the daemon's namespace.
    pub init: u32,
    /// The init of the caller's pid namespace (whose age is the container's uptime).
    ns_init: u32,
    /// Its start, in clock ticks since boot, read when a view first needs it.
    ns_start: OnceLock<Option<u64>>,
    /// Its cgroup in each controller's hierarchy, read from /proc/<init>/cgroup.
    paths: CgroupPaths,
    /// Boxed: most containers use one or two controllers, and an unopened slot then costs
    /// a pointer, not a whole CgroupDir.
    dirs: [OnceLock<Option<Box<CgroupDir>>>; CONTROLLERS],
    /// The memory cgroup's memory.stat, briefly reused across requests.
    pub memory_stat: StatCache,
    /// What its /proc/stat showed last, so counters never go backwards.
    pub stat_history: Mutex<StatHistory>,
    /// What its /proc/vmstat showed last, likewise.
    pub vmstat_history: Mutex<VmstatHistory>,
    pidfd: Option<OwnedFd>,
    checked_ms: AtomicU64,
    /// Set when its cgroups went away under it: callers caching it must resolve again.
    forgotten: AtomicBool,
}

impl Container {
    /// When the container's pid namespace began (its init's start), in clock ticks since
    /// boot.
    pub fn ns_start_ticks(&self, scratch: &mut Vec<u8>) -> io::Result<u64> {
        if let Some(t) = self.ns_start.get() {
            return t.ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH));
        }
        let t = pidns::start_ticks(self.ns_init, scratch);
        let _ = self.ns_start.set(t.as_ref().ok().copied());
        t
    }

    /// The pid namespace it is cached under; 0 for a process of the daemon's namespace.
    pub fn ns(&self) -> u64 {
        self.ns
    }

    /// Whether its init has exited (the namespace is gone).
    pub fn has_exited(&self) -> bool {
        self.pidfd.as_ref().is_some_and(pidns::has_exited)
    }

    /// The container's cgroup for `c`, opened on first use; None when the controller is
    /// not mounted or the cgroup is gone.
    pub fn cgroup(&self, hier: &Hierarchies, c: Controller) -> Option<&CgroupDir> {
        self.dirs[c as usize]
            .get_or_init(|| open_cgroup(hier, self.paths.get(c), c).ok().map(Box::new))
            .as_deref()
    }

    /// The container's cgroup path for `c`, as the host names it.
    pub fn cgroup_path(&self, c: Controller) -> Option<&str> {
        self.paths.get(c)
    }
}

/// The cgroup path of `c` in the text of /proc/<pid>/cgroup: its v1 hierarchy's line where
/// one is mounted, else the unified one.
fn path_in<'a>(hier: &Hierarchies, text: &'a str, c: Controller) -> Option<&'a str> {
    let v1 = hier.v1_for(c.name()).is_some();
    membership::cgroup_path(text, v1.then(|| c.name()))
}

/// A container's cgroup path for each controller, each distinct path stored once: a
/// container's /proc/<init>/cgroup runs to a kilobyte on v1 hosts (a dozen lines repeating
/// one long path), most of it about hierarchies no view reads.
#[derive(Debug)]
struct CgroupPaths {
    /// The distinct paths, one after the other.
    text: Box<str>,
    /// Where each controller's path lies in `text`: (start, length); length 0 for none.
    spans: [(u16, u16); CONTROLLERS],
}

const ALL: [Controller; CONTROLLERS] = [
    Controller::Memory,
    Controller::Cpuacct,
    Controller::Cpu,
    Controller::Cpuset,
    Controller::Blkio,
    Controller::Pressure,
];

impl CgroupPaths {
    fn parse(hier: &Hierarchies, cgroup_text: &str) -> io::Result<CgroupPaths> {
        let mut text = String::new();
        let mut spans = [(0u16, 0u16); CONTROLLERS];
        for c in ALL {
            let Some(path) = path_in(hier, cgroup_text, c) else {
                continue;
            };
            // Any occurrence will do: the span only has to hold the same bytes.
            let start = text.find(path).unwrap_or_else(|| {
                text.push_str(path);
                text.len() - path.len()
            });
            let too_long = || io::Error::from_raw_os_error(libc::ENAMETOOLONG);
            spans[c as usize] = (
                u16::try_from(start).map_err(|_| too_long())?,
                u16::try_from(path.len()).map_err(|_| too_long())?,
            );
        }
        Ok(CgroupPaths {
            text: text.into_boxed_str(),
            spans,
        })
    }

    fn get(&self, c: Controller) -> Option<&str> {
        let (start, len) = self.spans[c as usize];
        let (start, len) = (usize::from(start), usize::from(len));
        (len > 0)
            .then(|| self.text.get(start..start + len))
            .flatten()
    }

    /// Whether `cgroup_text` puts the process in the same cgroups as these paths.
    fn same_as(&self, hier: &Hierarchies, cgroup_text: &str) -> bool {
        ALL.iter()
            .all(|&c| path_in(hier, cgroup_text, c) == self.get(c))
    }
}

fn open_cgroup(hier: &Hierarchies, path: Option<&str>, c: Controller) -> io::Result<CgroupDir> {
    let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
    let h = match c {
        Controller::Pressure => hier.unified.as_ref(),
        _ => hier
            .v1_for(c.name())
            .or_else(|| hier.unified_for(c.v2_name())),
    }
    .ok_or_else(enoent)?;
    let path = path.ok_or_else(enoent)?;
    let dir = CgroupDir::open(h, path)?;
    if h.unified && !matches!(c, Controller::Cpuacct | Controller::Pressure) {
        // On v2 a controller's files exist only where its parent enabled it: elsewhere
        // nothing of that kind limits or accounts the container (cpu.stat, which
        // Cpuacct reads, is always there).
        let mut list = Vec::new();
        dir.read(Knob::Controllers, &mut list)?;
        if !list
            .split(|b| b.is_ascii_whitespace())
            .any(|w| w == c.v2_name().as_bytes())
        {
            return Err(enoent());
        }
    }
    Ok(dir)
}

/// The resolver and its cache, shared by all workers (read-mostly).
pub struct Containers {
    pub hier: Hierarchies,
    own_pidns: u64,
    own_pid: u32,
    epoch: Instant,
    cache: RwLock<HashMap<u64, Arc<Container>>>,
    sweep_at: std::sync::atomic::AtomicUsize,
    /// /proc/stat histories handed over by a predecessor, by pid namespace, with the init
    /// they belonged to: a container built here for that namespace continues from them.
    inherited: Mutex<HashMap<u64, Inherited>>,
}

/// What a predecessor showed a container: its init, its /proc/stat and /proc/vmstat
/// histories.
type Inherited = (u32, StatHistory, VmstatHistory);

impl Containers {
    pub fn new(hier: Hierarchies) -> io::Result<Containers> {
        let own_pid = std::process::id();
        Ok(Containers {
            hier,
            own_pidns: pidns::pidns_inode(own_pid)?,
            own_pid,
            epoch: Instant::now(),
            cache: RwLock::new(HashMap::new()),
            sweep_at: std::sync::atomic::AtomicUsize::new(FIRST_SWEEP),
            inherited: Mutex::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The container of the process `pid` (as the request header gives it), whose pidfd
    /// is `pidfd` where we have one.
    fn resolve(
        &self,
        pid: u32,
        pidfd: Option<&OwnedFd>,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Arc<Container>> {
        let pid = if pid == 0 { self.own_pid } else { pid };
        let (ns_fd, ns) = pidns::pidns_of(pidfd, pid)?;
        if ns == self.own_pidns {
            // Host processes are their own container; they are not cached by namespace.
            return self.build(0, pid, 1, scratch).map(Arc::new);
        }
        if let Some(c) = self.cached(ns, scratch) {
            stats::add(Counter::ContainerHit);
            return Ok(c);
        }
        stats::add(Counter::ContainerMiss);
        let init = pidns::init_of(&ns_fd, pid, scratch)?;
        let c = Arc::new(self.build(ns, init, init, scratch)?);
        let handed = self
            .inherited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ns);
        if let Some((was, stat, vmstat)) = handed
            && was == init
        {
            *c.stat_history.lock().unwrap_or_else(|e| e.into_inner()) = stat;
            *c.vmstat_history.lock().unwrap_or_else(|e| e.into_inner()) = vmstat;
        }
        let mut map = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.sweep_at.load(Ordering::Relaxed) {
            map.retain(|_, c| !c.has_exited());
            self.sweep_at
                .store((map.len() * 2).max(FIRST_SWEEP), Ordering::Relaxed);
        }
        map.insert(ns, c.clone());
        Ok(c)
    }

    /// A cached entry that is still valid.
    fn cached(&self, ns: u64, scratch: &mut Vec<u8>) -> Option<Arc<Container>> {
        let c = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ns)
            .cloned()?;
        self.still_valid(&c, scratch).then_some(c)
    }

    /// Whether `c` may still be used: not forgotten, its init alive and, at most
    /// RECHECK_MS ago, still in the cgroups we opened.
    fn still_valid(&self, c: &Container, scratch: &mut Vec<u8>) -> bool {
        if c.forgotten.load(Ordering::Relaxed) || c.pidfd.as_ref().is_some_and(pidns::has_exited) {
            return false;
        }
        let now = self.now_ms();
        if now.saturating_sub(c.checked_ms.load(Ordering::Relaxed)) > RECHECK_MS {
            let path = ProcPath::new(c.init, "cgroup");
            if kfile::read_path(path.as_cstr(), scratch).is_err()
                || !std::str::from_utf8(scratch).is_ok_and(|t| c.paths.same_as(&self.hier, t))
            {
                return false;
            }
            c.checked_ms.store(now, Ordering::Relaxed);
        }
        true
    }

    /// `resolve`, remembering the answer per caller in the worker's `callers`: a process
    /// reading again costs one poll instead of a path walk through /proc.
    pub fn resolve_for(
        &self,
        callers: &mut Callers,
        pid: u32,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Arc<Container>> {
        if let Some(i) = callers.slots.iter().position(|c| c.pid == pid) {
            let slot = &callers.slots[i];
            if !pidns::has_exited(&slot.pidfd) && self.still_valid(&slot.container, scratch) {
                stats::add(Counter::CallerHit);
                return Ok(slot.container.clone());
            }
            callers.slots.swap_remove(i);
        }
        stats::add(Counter::CallerMiss);
        // The request names a thread; without PIDFD_THREAD (Linux < 6.9) nothing is kept.
        let pidfd = if pid != 0 {
            pidns::pidfd_open_thread(pid).ok()
        } else {
            None
        };
        let c = self.resolve(pid, pidfd.as_ref(), scratch)?;
        if let Some(pidfd) = pidfd {
            callers.remember(Caller {
                pid,
                pidfd,
                container: c.clone(),
            });
        }
        Ok(c)
    }

    /// An entry with the cgroups of `init` and the age of `ns_init`.
    fn build(
        &self,
        ns: u64,
        init: u32,
        ns_init: u32,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Container> {
        let pidfd = pidns::pidfd_open(init).ok();
        kfile::read_path(ProcPath::new(init, "cgroup").as_cstr(), scratch)?;
        let paths = CgroupPaths::parse(&self.hier, &String::from_utf8_lossy(scratch))?;
        Ok(Container {
            ns,
            init,
            ns_init,
            ns_start: OnceLock::new(),
            paths,
            dirs: Default::default(),
            memory_stat: StatCache::default(),
            stat_history: Mutex::default(),
            vmstat_history: Mutex::default(),
            pidfd,
            checked_ms: AtomicU64::new(self.now_ms()),
            forgotten: AtomicBool::new(false),
        })
    }

    /// Drop `c` from the cache (its cgroup went away under it), so the next request
    /// resolves the container afresh.
    pub fn forget(&self, c: &Arc<Container>) {
        c.forgotten.store(true, Ordering::Relaxed);
        let mut map = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if map.get(&c.ns).is_some_and(|cached| Arc::ptr_eq(cached, c)) {
            map.remove(&c.ns);
        }
    }

    /// Every cached container's /proc/stat and /proc/vmstat histories, one
    /// `ns init stat vmstat` line each, for a successor's `inherit_histories`. The vmstat
    /// word is last: a predecessor that has none leaves it out, and a successor that
    /// knows none ignores it.
    pub fn export_histories(&self) -> String {
        let map = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (ns, c) in map.iter() {
            let stat = c.stat_history.lock().unwrap_or_else(|e| e.into_inner());
            let vmstat = c.vmstat_history.lock().unwrap_or_else(|e| e.into_inner());
            let (stat, vmstat) = (stat.to_word(), vmstat.to_word());
            out.push_str(&format!("{ns} {} {stat} {vmstat}\n", c.init));
        }
        out
    }

    /// Take the histories a predecessor exported; how many. Malformed lines are skipped.
    pub fn inherit_histories(&self, text: &str) -> usize {
        let mut inherited = self.inherited.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines() {
            let mut f = line.split(' ');
            let (Some(ns), Some(init), Some(stat)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let vmstat = VmstatHistory::from_word(f.next().unwrap_or(""));
            if let (Ok(ns), Ok(init), Some(stat), Some(vmstat)) = (
                ns.parse(),
                init.parse(),
                StatHistory::from_word(stat),
                vmstat,
            ) {
                inherited.insert(ns, (init, stat, vmstat));
            }
        }
        inherited.len()
    }

    /// How many pid namespaces are cached (for stats and tests).
    pub fn cached_len(&self) -> usize {
        self.cache.read().map(|m| m.len()).unwrap_or(0)
    }
}

/// How many callers a worker remembers.
const CALLERS: usize = 64;

struct Caller {
    pid: u32,
    /// Tells whether the thread exited (and its pid may now name another).
    pidfd: OwnedFd,
    container: Arc<Container>,
}

/// Per worker: the containers of recent callers, by thread id.
#[derive(Default)]
pub struct Callers {
    slots: Vec<Caller>,
    next: usize,
}

impl Callers {
    fn remember(&mut self, c: Caller) {
        if self.slots.len() < CALLERS {
            self.slots.push(c);
        } else {
            self.next = (self.next + 1) % CALLERS;
            self.slots[self.next] = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::mounts::parse_mountinfo;

    const HYBRID_MOUNTS: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
";
    const V2_MOUNTS: &str = "31 24 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    const DOCKER: &str = "12:pids:/docker/0123456789abcdef\n\
        9:memory:/docker/0123456789abcdef\n\
        4:cpu,cpuacct:/docker/0123456789abcdef\n\
        3:cpuset:/docker/0123456789abcdef\n\
        1:name=systemd:/docker/0123456789abcdef\n0::/system.slice/docker.service\n";

    #[test]
    fn paths_are_stored_once_and_found_per_controller() {
        let hier = parse_mountinfo(HYBRID_MOUNTS);
        let p = CgroupPaths::parse(&hier, DOCKER).unwrap();
        assert_eq!(
            &*p.text,
            "/docker/0123456789abcdef/system.slice/docker.service"
        );
        let want = Some("/docker/0123456789abcdef");
        for c in [
            Controller::Memory,
            Controller::Cpu,
            Controller::Cpuacct,
            Controller::Cpuset,
        ] {
            assert_eq!(p.get(c), want, "{c:?}");
        }
        // No v1 blkio hierarchy here: the unified line.
        assert_eq!(
            p.get(Controller::Blkio),
            Some("/system.slice/docker.service")
        );
    }

    #[test]
    fn unified_host_and_missing_lines() {
        let hier = parse_mountinfo(V2_MOUNTS);
        let p = CgroupPaths::parse(&hier, "0::/a/b/init.scope\n").unwrap();
        assert_eq!(&*p.text, "/a/b");
        assert!(ALL.iter().all(|&c| p.get(c) == Some("/a/b")));
        let none = CgroupPaths::parse(&hier, "garbage\n").unwrap();
        assert!(ALL.iter().all(|&c| none.get(c).is_none()));
        assert!(none.same_as(&hier, ""));
    }

    #[test]
    fn a_move_in_a_hierarchy_that_is_read_changes_the_container() {
        let hier = parse_mountinfo(HYBRID_MOUNTS);
        let p = CgroupPaths::parse(&hier, DOCKER).unwrap();
        assert!(p.same_as(&hier, DOCKER));
        let moved = DOCKER.replace("9:memory:/docker/0123456789abcdef", "9:memory:/other");
        assert!(!p.same_as(&hier, &moved));
        // pids and name=systemd are read by no view.
        let elsewhere = DOCKER.replace("12:pids:/docker/0123456789abcdef", "12:pids:/other");
        assert!(p.same_as(&hier, &elsewhere));
    }

    #[test]
    fn an_overlong_path_is_refused() {
        let hier = parse_mountinfo(V2_MOUNTS);
        let long = format!("0::/{}\n", "x".repeat(70_000));
        assert!(CgroupPaths::parse(&hier, &long).is_err());
    }

    #[test]
    fn histories_of_a_predecessor_with_or_without_vmstat() {
        let c = Containers::new(parse_mountinfo(V2_MOUNTS)).unwrap();
        // ns 7 from a predecessor that carries vmstat, ns 8 from one that does not; then
        // a malformed vmstat word, a malformed stat word, a short line
        let n = c.inherit_histories("7 100 5,6 1,2,3\n8 200 5,6\n9 1 5,6 x\n10 1 x 1\n11 1\n");
        assert_eq!(n, 2);
        let inherited = c.inherited.lock().unwrap();
        let (init, stat, vmstat) = &inherited[&7];
        assert_eq!(
            (*init, stat.to_word(), vmstat.to_word()),
            (100, "5,6".into(), "1,2,3".into())
        );
        let (init, stat, vmstat) = &inherited[&8];
        assert_eq!(
            (*init, stat.to_word(), vmstat),
            (200, "5,6".into(), &VmstatHistory::default())
        );
    }
}
