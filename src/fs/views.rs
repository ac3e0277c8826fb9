//! From a file and a caller to the bytes it shows: gather the caller's container's inputs,
//! then call the pure renderer.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sysfs;
use super::tree::{CpuList, FileId, NodeList, Pressure};
use super::{Fs, Worker};
use crate::cgroupfs::cpu::{self, Quota};
use crate::cgroupfs::dir::{CgroupDir, Knob};
use crate::cgroupfs::io as cgio;
use crate::cgroupfs::memory::{self, MemoryInputs};
use crate::cgroupfs::numa::NumaStat;
use crate::container::{Container, Containers, Controller};
use crate::cpulist;
use crate::kfile::{self, parse_u64};
use crate::loadavg::LoadTracker;
use crate::render::loadavg::Load;
use crate::render::stat::{self, Procs, StatInputs, StatScratch, Usage};
use crate::render::{cpuinfo, diskstats, loadavg, meminfo, node, swaps, uptime, vmstat};
use crate::stats::{self, Counter};

/// What the daemon was told on its command line that changes what files show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewOptions {
    /// Show swap (lxcfs's default; `-u` turns it off).
    pub swap: bool,
    /// Show ceil(quota / period) CPUs (`--enable-cfs`).
    pub cfs: bool,
    /// Per-container load averages (`-l`); the host's otherwise.
    pub loadavg: bool,
    /// Show a container's Zswap and Zswapped in its meminfo (`-z` shows 0).
    pub zswap: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            swap: true,
            cfs: false,
            loadavg: false,
            zswap: true,
        }
    }
}

/// Render `file` as the process `pid` sees it into `out`.
pub fn render(
    fs: &Fs,
    w: &mut Worker,
    file: FileId,
    pid: u32,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (containers, opts) = (&fs.containers, &fs.opts);
    stats::add(match file {
        FileId::Cpuinfo => Counter::RenderCpuinfo,
        FileId::Diskstats => Counter::RenderDiskstats,
        FileId::Loadavg => Counter::RenderLoadavg,
        FileId::Meminfo => Counter::RenderMeminfo,
        FileId::Slabinfo => Counter::RenderSlabinfo,
        FileId::Stat => Counter::RenderStat,
        FileId::Swaps => Counter::RenderSwaps,
        FileId::Uptime => Counter::RenderUptime,
        FileId::CpuList(_) => Counter::RenderCpuList,
        FileId::Pressure(_) => Counter::RenderPressure,
        FileId::NodeList(_) => Counter::RenderCpuList,
        FileId::Vmstat => Counter::RenderVmstat,
    });
    if fs.passthrough.load(std::sync::atomic::Ordering::Relaxed) {
        return host_file(file.host_path(), out);
    }
    match file {
        FileId::Meminfo | FileId::Swaps => in_container(containers, w, pid, out, |w, c, out| {
            memory_view(containers, opts, w, c, file, out)
        }),
        FileId::Uptime => in_container(containers, w, pid, out, |w, c, out| {
            uptime_view(containers, w, c, out)
        }),
        FileId::Cpuinfo => in_container(containers, w, pid, out, |w, c, out| {
            let v = cpu_view(containers, opts, w, c)?;
            let host = w.files.cpuinfo.read()?;
            cpuinfo::render(host, v.shown(&w.cpu), out);
            Ok(())
        }),
        FileId::CpuList(list) => in_container(containers, w, pid, out, |w, c, out| {
            let v = cpu_view(containers, opts, w, c)?;
            match list {
                // No CPU of the container is offline.
                CpuList::Offline => out.push(b'\n'),
                _ if v.renumber => cpulist::format_range(v.shown as u32, out),
                _ => cpulist::format(v.shown(&w.cpu), out),
            }
            Ok(())
        }),
        FileId::Stat => in_container(containers, w, pid, out, |w, c, out| {
            let procs = fs.loadavg.as_deref().and_then(|t| own_procs(t, c));
            stat_view(containers, opts, w, c, procs, out)
        }),
        FileId::Diskstats => in_container(containers, w, pid, out, |w, c, out| {
            diskstats_view(containers, w, c, out)
        }),
        FileId::Loadavg => match &fs.loadavg {
            Some(tracker) => {
                let c = containers.resolve_for(&mut w.callers, pid, &mut w.scratch)?;
                match own_load(tracker, &c) {
                    Some(load) => {
                        loadavg::render(&load, out);
                        Ok(())
                    }
                    None => host_file(c"/proc/loadavg", out),
                }
            }
            None => host_file(c"/proc/loadavg", out),
        },
        FileId::Vmstat => in_container(containers, w, pid, out, |w, c, out| {
            vmstat_view(containers, w, c, out)
        }),
        FileId::NodeList(list) => in_container(containers, w, pid, out, |w, c, out| {
            node_list_view(containers, opts, w, c, list, out)
        }),
        FileId::Pressure(p) => in_container(containers, w, pid, out, |_, c, out| {
            pressure_view(containers, c, p, file.host_path(), out)
        }),
        FileId::Slabinfo => in_container(containers, w, pid, out, |_, c, out| {
            // v1 kernels with per-cgroup slab accounting keep the cgroup's own slabs; newer
            // ones leave memory.kmem.slabinfo empty, and then the host's file is shown.
            if let Some(dir) = c.cgroup(&containers.hier, Controller::Memory)
                && dir.has(Knob::KmemSlabinfo)
            {
                dir.read(Knob::KmemSlabinfo, out)?;
                if !out.is_empty() {
                    return Ok(());
                }
            }
            host_file(c"/proc/slabinfo", out)
        }),
    }
}

/// The container's load (with -l); None for a process of the host, or a container in the
/// root cpu cgroup (with every host task), which see the host's.
fn own_load(tracker: &LoadTracker, c: &Arc<Container>) -> Option<Load> {
    match c.cgroup_path(Controller::Cpu) {
        Some(path) if c.ns() != 0 && path != "/" => Some(tracker.read(path, c)),
        _ => None,
    }
}

/// /proc/stat's procs_running and procs_blocked of the container (with -l): its threads
/// in R and D state at the tracker's last 5-second sample, not a scan per read. The
/// reader itself is running, as the kernel's count always includes it.
fn own_procs(tracker: &LoadTracker, c: &Arc<Container>) -> Option<Procs> {
    own_load(tracker, c).map(|l| Procs {
        running: l.running.max(1),
        blocked: l.blocked,
    })
}

/// Resolve the caller's container and run `view` for it. When the container's cgroups
/// went away under a cached entry (ENODEV, ENOENT), resolve again once.
fn in_container(
    containers: &Containers,
    w: &mut Worker,
    pid: u32,
    out: &mut Vec<u8>,
    view: impl Fn(&mut Worker, &Arc<Container>, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let c = containers.resolve_for(&mut w.callers, pid, &mut w.scratch)?;
    match view(w, &c, out) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENOENT)) => {
            containers.forget(&c);
            out.clear();
            let c = containers.resolve_for(&mut w.callers, pid, &mut w.scratch)?;
            view(w, &c, out)
        }
        r => r,
    }
}

fn host_file(path: &std::ffi::CStr, out: &mut Vec<u8>) -> io::Result<()> {
    kfile::read_path(path, out)
}

/// How long a read of an input that the kernel itself refreshes lazily may be reused:
/// host meminfo and memcg statistics (per-CPU counters folded in batches), host stat
/// (tick-based counters). Nothing a reader could observe changes within it; at tens of
/// thousands of reads a second it saves most of the kernel's formatting work.
pub const INPUT_TTL: Duration = Duration::from_millis(5);
/// /proc/cpuinfo changes only with CPU hotplug and its sampled "cpu MHz" lines, and the
/// kernel takes long to produce it (it queries every CPU's frequency).
const CPUINFO_TTL: Duration = Duration::from_secs(1);

/// A host file a view starts from, per worker (no contention on the kernel's per-file
/// lock), reused for up to `ttl`.
pub struct HostFile {
    path: &'static std::ffi::CStr,
    /// Kept open and re-read at offset 0, for files the kernel makes as one record.
    fd: Option<OwnedFd>,
    ttl: Duration,
    text: Vec<u8>,
    at: Option<Instant>,
}

impl HostFile {
    fn new(path: &'static std::ffi::CStr, single_record: bool, ttl: Duration) -> HostFile {
        HostFile {
            path,
            fd: single_record.then(|| kfile::open_path(path).ok()).flatten(),
            ttl,
            text: Vec::new(),
            at: None,
        }
    }

    /// The file's contents, at most `ttl` old.
    pub fn read(&mut self) -> io::Result<&[u8]> {
        if self.at.is_none_or(|t| t.elapsed() >= self.ttl) {
            self.at = None;
            match &self.fd {
                Some(fd) => kfile::reread(fd.as_fd(), &mut self.text)?,
                None => kfile::read_path(self.path, &mut self.text)?,
            }
            self.at = Some(Instant::now());
        }
        Ok(&self.text)
    }
}

/// The host files the views start from.
pub struct HostFiles {
    pub meminfo: HostFile,
    pub stat: HostFile,
    pub cpuinfo: HostFile,
    pub online: HostFile,
}

impl HostFiles {
    pub fn open() -> HostFiles {
        HostFiles {
            meminfo: HostFile::new(c"/proc/meminfo", true, INPUT_TTL),
            stat: HostFile::new(c"/proc/stat", true, INPUT_TTL),
            // One record per CPU: read whole each time it is refreshed.
            cpuinfo: HostFile::new(c"/proc/cpuinfo", false, CPUINFO_TTL),
            online: HostFile::new(c"/sys/devices/system/cpu/online", true, INPUT_TTL),
        }
    }
}

/// The container's own memory cgroup, unless it is the root: the root cgroup holds the
/// whole host, and on cgroup v2 it has neither usage nor limits (Linux 7.x has no
/// memory.current there).
fn own_memory_cgroup<'c>(containers: &Containers, c: &'c Container) -> Option<&'c CgroupDir> {
    c.cgroup(&containers.hier, Controller::Memory)
        .filter(|_| c.cgroup_path(Controller::Memory) != Some("/"))
}

fn memory_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
    file: FileId,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let Some(dir) = own_memory_cgroup(containers, c) else {
        // No memory controller, or the root: nothing limits the container, so the host's
        // values hold.
        return match file {
            FileId::Meminfo => host_file(c"/proc/meminfo", out),
            _ => host_file(c"/proc/swaps", out),
        };
    };
    let m = MemoryInputs::gather(dir, &c.memory_stat, INPUT_TTL, &mut w.scratch)?;
    let host = w.files.meminfo.read()?;
    let host_swap = meminfo::host_value(host, b"SwapTotal").unwrap_or(0);
    let swap = swaps::SwapView::new(&m, host_swap, opts.swap);
    match file {
        FileId::Meminfo => meminfo::render(host, &m, &swap, opts.zswap, out),
        _ => swaps::render(&swap, out),
    }
    Ok(())
}

/// The container's /proc/vmstat: the host's file with its memory cgroup's counts. The
/// host's file unchanged where memory_view shows the host's meminfo (no memory
/// controller, or the root cgroup, which holds every host task).
fn vmstat_view(
    containers: &Containers,
    w: &mut Worker,
    c: &Container,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let Some(dir) = own_memory_cgroup(containers, c) else {
        return host_file(c"/proc/vmstat", out);
    };
    dir.read(Knob::MemoryStat, &mut w.scratch)?;
    // Without an oom_kill count there (kernels before 4.13), oom_kill reads 0.
    let mut events = Vec::new();
    if dir.has(Knob::MemoryEvents) {
        dir.read(Knob::MemoryEvents, &mut events)?;
    }
    kfile::read_path(c"/proc/vmstat", &mut w.host)?;
    let (page, thp) = page_sizes();
    let counts = memory::vmstat_counters(&w.scratch, &events, dir.unified, page, thp);
    let mut history = c.vmstat_history.lock().unwrap_or_else(|e| e.into_inner());
    vmstat::render(&w.host, &counts, &mut history, out);
    Ok(())
}

/// The base page size and the PMD-sized huge page size, in bytes, which /proc/vmstat
/// counts in (4 KiB and 2 MiB on x86_64; 64 KiB and 512 MiB on some arm64 kernels).
fn page_sizes() -> (u64, u64) {
    static SIZES: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *SIZES.get_or_init(|| {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .filter(|&p| p > 0)
            .unwrap_or(4096) as u64;
        let mut buf = Vec::new();
        let thp = kfile::read_path(
            c"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
            &mut buf,
        )
        .ok()
        .and_then(|()| parse_u64(&buf))
        .filter(|&t| t > 0)
        // Without THP the huge page lines stay 0 anyway; a PMD maps 512 entries.
        .unwrap_or(page * 512);
        (page, thp)
    })
}

/// The container's own pressure stall information: its unified cgroup's `*.pressure`
/// file, which the kernel writes in /proc/pressure's format. On hybrid hosts the unified
/// hierarchy has PSI even with no controller enabled, but a runtime may leave a container
/// in its manager's unified cgroup: there the unified path is the container's only when
/// it is (or is below) its v1 memory or cpu path. The host's own file is shown for the root
/// cgroup, for a container whose unified cgroup is not its own, and where the cgroup has
/// no such file (PSI turned off there: `cgroup.pressure` 0, `cgroup_disable=pressure`),
/// as lxcfs does.
fn pressure_view(
    containers: &Containers,
    c: &Container,
    p: Pressure,
    host_path: &std::ffi::CStr,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    match own_pressure(containers, c, p) {
        Some((dir, knob)) => dir.read(knob, out),
        None => host_file(host_path, out),
    }
}

/// The cgroup whose `*.pressure` file is the container's own (see `pressure_view`), and
/// that file; None where the host's is shown.
fn own_pressure<'c>(
    containers: &Containers,
    c: &'c Container,
    p: Pressure,
) -> Option<(&'c CgroupDir, Knob)> {
    let knob = match p {
        Pressure::Cpu => Knob::CpuPressure,
        Pressure::Io => Knob::IoPressure,
        Pressure::Memory => Knob::MemoryPressure,
        Pressure::Irq => Knob::IrqPressure,
    };
    let own = match c.cgroup_path(Controller::Pressure) {
        None | Some("/") => false,
        Some(_) if containers.hier.v1.is_empty() => true,
        Some(u) => [Controller::Memory, Controller::Cpu]
            .iter()
            .filter_map(|&k| c.cgroup_path(k))
            .any(|base| at_or_below(u, base)),
    };
    let dir = c.cgroup(&containers.hier, Controller::Pressure)?;
    (own && dir.has(knob)).then_some((dir, knob))
}

/// A new read-write fd on the kernel file that /proc/pressure/`p` shows the caller `pid`
/// (its cgroup's `*.pressure`, or the host's file), for a PSI trigger.
pub fn pressure_file_rw(fs: &Fs, w: &mut Worker, pid: u32, p: Pressure) -> io::Result<OwnedFd> {
    let c = fs
        .containers
        .resolve_for(&mut w.callers, pid, &mut w.scratch)?;
    match own_pressure(&fs.containers, &c, p) {
        Some((dir, knob)) => dir.open_rw(knob),
        None => kfile::open_rw(None, FileId::Pressure(p).host_path()),
    }
}

/// Whether cgroup `path` is `base` or below it.
fn at_or_below(path: &str, base: &str) -> bool {
    base == "/" || path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
}

fn uptime_view(
    containers: &Containers,
    w: &mut Worker,
    c: &Container,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)?;
    let boottime_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    let init_start_ns = c
        .ns_start_ticks(&mut w.scratch)?
        .saturating_mul(1_000_000_000)
        / w.clk_tck;
    let cpu_usage_ns = c
        .cgroup(&containers.hier, Controller::Cpuacct)
        .and_then(|dir| cpu_usage_ns(dir, &mut w.scratch));
    uptime::render(
        &uptime::UptimeInputs {
            boottime_ns,
            init_start_ns,
            cpu_usage_ns,
        },
        out,
    );
    Ok(())
}

/// Per-worker buffers of the CPU views, reused so a render allocates nothing.
#[derive(Default)]
pub struct CpuBuffers {
    online: Vec<u32>,
    /// Host CPUs the container may use (its cpuset, within the host's online CPUs), ascending.
    cpuset: Vec<u32>,
    /// The host's online memory nodes.
    host_nodes: Vec<u32>,
    /// The container's memory nodes (its cpuset.mems within the host's), ascending.
    pub nodes: Vec<u32>,
    usage: Vec<cpu::CpuTime>,
    stat: StatScratch,
}

/// The CPUs a container is shown: the first `shown` of the worker's `cpuset`.
pub struct CpuView {
    /// How many of the cpuset it is shown: all, or ceil(quota) with --enable-cfs.
    pub shown: usize,
    /// Shown as CPUs 0..shown rather than by host id (--enable-cfs).
    pub renumber: bool,
    quota: Option<Quota>,
}

impl CpuView {
    pub fn shown<'a>(&self, b: &'a CpuBuffers) -> &'a [u32] {
        &b.cpuset[..self.shown.min(b.cpuset.len())]
    }
}

/// Fill `w.cpu.cpuset` with the container's CPUs.
fn cpu_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
) -> io::Result<CpuView> {
    let b = &mut w.cpu;
    if !cpulist::parse_into(w.files.online.read()?, &mut b.online) {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    let in_cpuset = match c.cgroup(&containers.hier, Controller::Cpuset) {
        Some(dir) => cpu::cpuset(dir, &mut w.scratch, &mut b.cpuset)?,
        None => false,
    };
    within_host(in_cpuset, &mut b.cpuset, &b.online);
    let quota = match (opts.cfs, c.cgroup(&containers.hier, Controller::Cpu)) {
        (true, Some(dir)) => cpu::quota(dir, &mut w.scratch)?,
        _ => None,
    };
    let n = b.cpuset.len();
    Ok(CpuView {
        shown: quota.map_or(n, |q| (q.cpus() as usize).min(n)),
        renumber: opts.cfs,
        quota,
    })
}

/// Keep the container's CPUs or nodes (`found` in its cpuset) that the host has online;
/// all the host's when it has none of them.
fn within_host(found: bool, list: &mut Vec<u32>, online: &[u32]) {
    if found {
        list.retain(|x| online.binary_search(x).is_ok());
    }
    if !found || list.is_empty() {
        list.clear();
        list.extend_from_slice(online);
    }
}

/// Fill `w.cpu.nodes` with the container's memory nodes: its cpuset.mems within the
/// host's online nodes.
fn node_view(containers: &Containers, w: &mut Worker, c: &Container) -> io::Result<()> {
    let b = &mut w.cpu;
    kfile::read_path(c"/sys/devices/system/node/online", &mut w.scratch)?;
    if !cpulist::parse_into(&w.scratch, &mut b.host_nodes) {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    let in_cpuset = match c.cgroup(&containers.hier, Controller::Cpuset) {
        Some(dir) => cpu::mems(dir, &mut w.scratch, &mut b.nodes)?,
        None => false,
    };
    within_host(in_cpuset, &mut b.nodes, &b.host_nodes);
    Ok(())
}

/// The CPUs the process `pid` is shown (in `w.cpu`), and with `nodes` its memory nodes.
pub fn cpus_of(fs: &Fs, w: &mut Worker, pid: u32, nodes: bool) -> io::Result<CpuView> {
    let c = fs
        .containers
        .resolve_for(&mut w.callers, pid, &mut w.scratch)?;
    if nodes {
        node_view(&fs.containers, w, &c)?;
    }
    cpu_view(&fs.containers, &fs.opts, w, &c)
}

/// One of /sys/devices/system/node's lists for the container.
fn node_list_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
    list: NodeList,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    node_view(containers, w, c)?;
    let v = cpu_view(containers, opts, w, c)?;
    let b = &mut w.cpu;
    if list == NodeList::HasCpu {
        // Only the nodes where the container has a CPU.
        let (shown, mut keep) = (&b.cpuset[..v.shown.min(b.cpuset.len())], Vec::new());
        for &n in &b.nodes {
            let dir = std::path::Path::new(sysfs::HOST_BASE).join(format!("node/node{n}"));
            let cpus = node_cpus(&dir, &mut w.scratch)?;
            if shown.iter().any(|c| cpus.binary_search(c).is_ok()) {
                keep.push(n);
            }
        }
        b.nodes = keep;
    }
    kfile::read_path(FileId::NodeList(list).host_path(), &mut w.scratch)?;
    let host = cpulist::parse(&w.scratch).ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
    node::list(&b.nodes, &host, out);
    Ok(())
}

/// The host CPUs of the nodeN directory `dir`.
fn node_cpus(dir: &std::path::Path, buf: &mut Vec<u8>) -> io::Result<Vec<u32>> {
    kfile::read_path_buf(&dir.join("cpulist"), buf)?;
    cpulist::parse(buf).ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
}

/// nodeN/meminfo (the host's `host`) for the process `pid`: from its memory cgroup's
/// memory.numa_stat, within the MemTotal its /proc/meminfo shows. The host node's file
/// where memory_view shows the host's meminfo, or the cgroup has no numa_stat.
pub fn node_meminfo(
    fs: &Fs,
    w: &mut Worker,
    pid: u32,
    n: u32,
    host: &std::path::Path,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let containers = &fs.containers;
    in_container(containers, w, pid, out, |w, c, out| {
        let dir = own_memory_cgroup(containers, c).filter(|d| d.has(Knob::NumaStat));
        let Some(dir) = dir else {
            return kfile::read_path_buf(host, out);
        };
        let m = MemoryInputs::gather(dir, &c.memory_stat, INPUT_TTL, &mut w.scratch)?;
        dir.read(Knob::NumaStat, &mut w.scratch)?;
        let stat = NumaStat::parse(&w.scratch, n, page_sizes().0);
        let total_kb = m.limit.filter(|&l| l > 0).map_or(u64::MAX, |l| l / 1024);
        kfile::read_path_buf(host, &mut w.host)?;
        node::meminfo(&w.host, &stat, total_kb, out);
        Ok(())
    })
}

/// The cpulist or (`mask`) cpumap of a nodeN directory (`e`), for the caller `shown`.
pub fn node_cpus_file(
    e: &sysfs::Entry,
    mask: bool,
    shown: &sysfs::Shown<'_>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let malformed = || io::Error::from_raw_os_error(libc::EIO);
    let dir = e.host.parent().ok_or_else(malformed)?;
    let mut text = Vec::new();
    let cpus = node_cpus(dir, &mut text)?;
    if mask {
        kfile::read_path_buf(&e.host, &mut text)?;
        let digits = node::mask_digits(&text);
        node::cpumap(&cpus, shown.cpus, shown.renumber, digits, out);
    } else {
        node::cpulist(&cpus, shown.cpus, shown.renumber, out);
    }
    Ok(())
}

fn stat_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
    procs: Option<Procs>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let v = cpu_view(containers, opts, w, c)?;
    let b = &mut w.cpu;
    let usage = match c.cgroup(&containers.hier, Controller::Cpuacct) {
        Some(dir) if dir.unified => {
            dir.read(Knob::CpuStat, &mut w.scratch)?;
            cpu::parse_cpu_stat(&w.scratch).map_or(Usage::Unknown, Usage::Total)
        }
        // Kernels before 4.7 have no usage_all: the host's lines of the container's CPUs.
        Some(dir) if !dir.has(Knob::CpuacctUsageAll) => Usage::Unknown,
        Some(dir) => {
            dir.read(Knob::CpuacctUsageAll, &mut w.scratch)?;
            cpu::parse_usage_all(&w.scratch, &mut b.usage);
            Usage::PerCpu(&b.usage)
        }
        None => Usage::Unknown,
    };
    let inputs = StatInputs {
        host: w.files.stat.read()?,
        cpuset: &b.cpuset,
        shown: v.shown,
        renumber: v.renumber,
        usage,
        quota_cpus: v.quota.map(|q| q.quota as f64 / q.period.max(1) as f64),
        ticks_per_sec: w.clk_tck,
        procs,
    };
    let mut history = c.stat_history.lock().unwrap_or_else(|e| e.into_inner());
    stat::render(&inputs, &mut history, &mut b.stat, out);
    Ok(())
}

fn diskstats_view(
    containers: &Containers,
    w: &mut Worker,
    c: &Container,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // The host's file where nothing tells the caller's I/O from anyone else's: no I/O
    // controller, or the root I/O cgroup (the host's own processes), which has no io.stat
    // on v2 and whose counters stay empty on v1 blk-mq kernels.
    let in_root = c.cgroup_path(Controller::Blkio) == Some("/");
    let dir = if in_root {
        None
    } else {
        c.cgroup(&containers.hier, Controller::Blkio)
    };
    let Some(dir) = dir else {
        return host_file(c"/proc/diskstats", out);
    };
    let mut devs = Vec::new();
    if dir.unified {
        dir.read(Knob::IoStat, &mut w.scratch)?;
        devs = cgio::parse_io_stat(&w.scratch);
    } else {
        for (serviced, bytes) in [
            (Knob::BlkioServiced, Knob::BlkioServiceBytes),
            (Knob::BfqServiced, Knob::BfqServiceBytes),
        ] {
            if !dir.has(serviced) {
                continue;
            }
            dir.read(serviced, &mut w.scratch)?;
            dir.read(bytes, &mut w.host)?;
            cgio::merge_blkio(&mut devs, &w.scratch, &w.host);
        }
    }
    kfile::read_path(c"/proc/diskstats", &mut w.host)?;
    diskstats::render(&w.host, &devs, out);
    Ok(())
}

/// CPU time a cgroup used: cpuacct.usage (v1, ns) or cpu.stat's usage_usec (v2).
fn cpu_usage_ns(dir: &CgroupDir, buf: &mut Vec<u8>) -> Option<u64> {
    if dir.unified {
        dir.read(Knob::CpuStat, buf).ok()?;
        let line = kfile::lines(buf).find_map(|l| l.strip_prefix(b"usage_usec "))?;
        parse_u64(line)?.checked_mul(1000)
    } else {
        dir.read(Knob::CpuacctUsage, buf).ok()?;
        parse_u64(buf)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_or_below() {
        use super::at_or_below;
        assert!(at_or_below("/docker/abc", "/docker/abc"));
        assert!(at_or_below("/docker/abc/init", "/docker/abc"));
        assert!(at_or_below("/anything", "/"));
        assert!(!at_or_below("/docker/abcd", "/docker/abc"));
        assert!(!at_or_below("/system.slice/docker.service", "/docker/abc"));
    }
}
