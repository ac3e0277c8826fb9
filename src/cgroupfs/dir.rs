//! An opened cgroup directory and its ancestors, with the files the views read kept open.
//!
//! A kept-open cgroup file is generated afresh by each read at offset 0, so after the
//! first read of a container, reading one of its files is a single pread(2): no path
//! walk, no open, no close, no allocation.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use super::membership::relative_to_root;
use super::mounts::Hierarchy;
use crate::kfile::{self, FdSlot};

/// The cgroup files the views read, by meaning; `name` gives the file on v1 or v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    MemoryStat,
    /// v1 memory.usage_in_bytes, v2 memory.current
    MemoryUsage,
    /// v1 memory.limit_in_bytes, v2 memory.max
    MemoryLimit,
    /// v2 memory.swap.current (v1 keeps swap in memory.stat)
    SwapUsage,
    /// v2 memory.swap.max (v1 keeps the RAM+swap limit in memory.stat)
    SwapLimit,
    /// v1 memory.swappiness
    Swappiness,
    /// v1 cpuacct.usage (ns)
    CpuacctUsage,
    /// v2 cpu.stat
    CpuStat,
    /// v1 cpuacct.usage_all: per-CPU user and system ns
    CpuacctUsageAll,
    /// v1 cpuset.cpus, v2 cpuset.cpus.effective
    CpusetCpus,
    /// v1 cpuset.mems, v2 cpuset.mems.effective
    CpusetMems,
    /// memory.numa_stat: the memory on each NUMA node
    NumaStat,
    /// v1 cpu.cfs_quota_us
    CfsQuota,
    /// v1 cpu.cfs_period_us
    CfsPeriod,
    /// v2 cpu.max
    CpuMax,
    /// v1 blkio.throttle.io_serviced_recursive (I/O counts; the CFQ files are gone on blk-mq)
    BlkioServiced,
    /// v1 blkio.throttle.io_service_bytes_recursive
    BlkioServiceBytes,
    /// v1 blkio.bfq.io_serviced_recursive (devices scheduled by BFQ)
    BfqServiced,
    /// v1 blkio.bfq.io_service_bytes_recursive
    BfqServiceBytes,
    /// v2 io.stat
    IoStat,
    /// v1 memory.kmem.slabinfo
    KmemSlabinfo,
    /// v1 memory.oom_control, v2 memory.events: both count OOM kills in `oom_kill` (v1 the
    /// cgroup's own only; v2 with its descendants', unless mounted memory_localevents)
    MemoryEvents,
    /// v1 tasks, v2 cgroup.threads: every thread in the cgroup
    Threads,
    /// v2 cgroup.controllers: the controllers active in the cgroup
    Controllers,
    /// v2 cpu.pressure, io.pressure, memory.pressure, irq.pressure (PSI)
    CpuPressure,
    IoPressure,
    MemoryPressure,
    IrqPressure,
}

const KNOBS: usize = 28;

impl Knob {
    pub fn name(self, unified: bool) -> &'static CStr {
        match (self, unified) {
            (Knob::MemoryStat, _) => c"memory.stat",
            (Knob::MemoryUsage, false) => c"memory.usage_in_bytes",
            (Knob::MemoryUsage, true) => c"memory.current",
            (Knob::MemoryLimit, false) => c"memory.limit_in_bytes",
            (Knob::MemoryLimit, true) => c"memory.max",
            (Knob::SwapUsage, _) => c"memory.swap.current",
            (Knob::SwapLimit, _) => c"memory.swap.max",
            (Knob::Swappiness, _) => c"memory.swappiness",
            (Knob::CpuacctUsage, _) => c"cpuacct.usage",
            (Knob::CpuStat, _) => c"cpu.stat",
            (Knob::CpuacctUsageAll, _) => c"cpuacct.usage_all",
            (Knob::CpusetCpus, false) => c"cpuset.cpus",
            (Knob::CpusetCpus, true) => c"cpuset.cpus.effective",
            (Knob::CpusetMems, false) => c"cpuset.mems",
            (Knob::CpusetMems, true) => c"cpuset.mems.effective",
            (Knob::NumaStat, _) => c"memory.numa_stat",
            (Knob::CfsQuota, _) => c"cpu.cfs_quota_us",
            (Knob::CfsPeriod, _) => c"cpu.cfs_period_us",
            (Knob::CpuMax, _) => c"cpu.max",
            (Knob::BlkioServiced, _) => c"blkio.throttle.io_serviced_recursive",
            (Knob::BlkioServiceBytes, _) => c"blkio.throttle.io_service_bytes_recursive",
            (Knob::BfqServiced, _) => c"blkio.bfq.io_serviced_recursive",
            (Knob::BfqServiceBytes, _) => c"blkio.bfq.io_service_bytes_recursive",
            (Knob::IoStat, _) => c"io.stat",
            (Knob::KmemSlabinfo, _) => c"memory.kmem.slabinfo",
            (Knob::MemoryEvents, false) => c"memory.oom_control",
            (Knob::MemoryEvents, true) => c"memory.events",
            (Knob::Threads, false) => c"tasks",
            (Knob::Threads, true) => c"cgroup.threads",
            (Knob::Controllers, _) => c"cgroup.controllers",
            (Knob::CpuPressure, _) => c"cpu.pressure",
            (Knob::IoPressure, _) => c"io.pressure",
            (Knob::MemoryPressure, _) => c"memory.pressure",
            (Knob::IrqPressure, _) => c"irq.pressure",
        }
    }
}

/// One directory of the chain, with its files opened on first use.
#[derive(Debug)]
struct Level {
    dir: OwnedFd,
    files: [FdSlot; KNOBS],
}

impl Level {
    fn new(dir: OwnedFd) -> Level {
        Level {
            dir,
            files: Default::default(),
        }
    }

    /// The kept-open file `k`; None when it does not exist here (a missing controller file
    /// is not an error).
    fn file(&self, k: Knob, unified: bool) -> io::Result<Option<BorrowedFd<'_>>> {
        self.files[k as usize].get_or_open(|| {
            match kfile::open_at(self.dir.as_fd(), k.name(unified)) {
                Ok(fd) => Ok(Some(fd)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Read `k` into `buf`; Ok(false) when the file does not exist.
    fn read(&self, k: Knob, unified: bool, buf: &mut Vec<u8>) -> io::Result<bool> {
        match self.file(k, unified)? {
            Some(fd) => kfile::reread(fd, buf).map(|()| true),
            None => Ok(false),
        }
    }
}

/// A cgroup, held as directory fds: its own, opened with one path walk, and its
/// ancestors' up to the hierarchy's root, opened (through `..`) only when a view first
/// needs them (a v1 memory view never does: the kernel sums the hierarchy's limits in
/// memory.stat).
#[derive(Debug)]
pub struct CgroupDir {
    pub unified: bool,
    /// How many ancestors lie between the cgroup and the hierarchy's root.
    depth: u16,
    own: Level,
    ancestors: OnceLock<Vec<Level>>,
}

impl CgroupDir {
    /// Open the cgroup at host path `cg` (as /proc/<pid>/cgroup shows it) in `h`.
    pub fn open(h: &Hierarchy, cg: &str) -> io::Result<CgroupDir> {
        let rel = relative_to_root(cg, &h.root)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == ".." || *p == ".") {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let depth = u16::try_from(parts.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
        let path = parts
            .iter()
            .fold(h.mountpoint.clone(), |p, part| p.join(part));
        let own = Level::new(open_dir_path(&path)?);
        Ok(CgroupDir {
            unified: h.unified,
            depth,
            own,
            ancestors: OnceLock::new(),
        })
    }

    /// The parent, grandparent, ... up to the hierarchy's root. An ancestor that cannot be
    /// opened (removed meanwhile) ends the chain there.
    fn ancestors(&self) -> &[Level] {
        self.ancestors.get_or_init(|| {
            let mut chain: Vec<Level> = Vec::with_capacity(usize::from(self.depth));
            for _ in 0..self.depth {
                let below = chain.last().map_or(&self.own.dir, |l| &l.dir);
                match kfile::open_dir(Some(below.as_fd()), c"..") {
                    Ok(fd) => chain.push(Level::new(fd)),
                    Err(_) => break,
                }
            }
            chain
        })
    }

    /// Read the cgroup's own `k` into `buf`. ENOENT when the file does not exist.
    pub fn read(&self, k: Knob, buf: &mut Vec<u8>) -> io::Result<()> {
        match self.own.read(k, self.unified, buf)? {
            true => Ok(()),
            false => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    /// The cgroup's own `k` opened anew for reading and writing, non-blocking: an fd of
    /// its own, as a PSI trigger needs (the kernel keeps one trigger per open file).
    pub fn open_rw(&self, k: Knob) -> io::Result<OwnedFd> {
        kfile::open_rw(Some(self.own.dir.as_fd()), k.name(self.unified))
    }

    /// Whether the cgroup has the file `k`.
    pub fn has(&self, k: Knob) -> bool {
        matches!(self.own.file(k, self.unified), Ok(Some(_)))
    }

    /// A one-number file of the cgroup; "max" is None.
    pub fn read_limit(&self, k: Knob, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        self.read(k, buf)?;
        kfile::parse_limit(buf)
    }

    /// This cgroup, then each ancestor up to the hierarchy's root.
    pub fn levels(&self) -> impl Iterator<Item = CgroupLevel<'_>> {
        std::iter::once(&self.own)
            .chain(self.ancestors())
            .map(|level| CgroupLevel {
                level,
                unified: self.unified,
            })
    }

    /// Read `k` from the nearest level (this cgroup, else its parent, ...) where it exists
    /// and `accept` takes its contents; false when none does.
    pub fn read_nearest(
        &self,
        k: Knob,
        buf: &mut Vec<u8>,
        accept: impl Fn(&[u8]) -> bool,
    ) -> io::Result<bool> {
        for level in self.levels() {
            if level.read(k, buf)? && accept(buf) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The smallest limit in `k` over this cgroup and every ancestor; None when all are
    /// unlimited. A level without the file (the v2 root has no memory.max) is skipped.
    pub fn min_limit(&self, k: Knob, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        let mut min: Option<u64> = None;
        for level in self.levels() {
            if level.read(k, buf)?
                && let Some(v) = kfile::parse_limit(buf)?
            {
                min = Some(min.map_or(v, |m| m.min(v)));
            }
        }
        Ok(min)
    }
}

/// One directory of a cgroup's chain.
pub struct CgroupLevel<'a> {
    level: &'a Level,
    unified: bool,
}

impl CgroupLevel<'_> {
    /// Read `k` here into `buf`; Ok(false) when the file does not exist at this level.
    pub fn read(&self, k: Knob, buf: &mut Vec<u8>) -> io::Result<bool> {
        self.level.read(k, self.unified, buf)
    }
}

fn open_dir_path(p: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_encoded_bytes())?;
    kfile::open_dir(None, &c)
}
