//! From a file and a caller to the bytes it shows: gather the caller's container's inputs,
//! then call the pure renderer.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::Worker;
use super::tree::FileId;
use crate::cgroupfs::dir::{CgroupDir, Knob};
use crate::cgroupfs::memory::MemoryInputs;
use crate::container::{Container, Containers, Controller};
use crate::kfile::{self, parse_u64};
use crate::render::{meminfo, swaps, uptime};

/// What the daemon was told on its command line that changes what files show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewOptions {
    /// Show swap (lxcfs's default; `-u` turns it off).
    pub swap: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions { swap: true }
    }
}

/// Render `file` as the process `pid` sees it into `out`.
pub fn render(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    file: FileId,
    pid: u32,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    match file {
        FileId::Meminfo | FileId::Swaps => in_container(containers, w, pid, out, |w, c, out| {
            memory_view(containers, opts, w, c, file, out)
        }),
        FileId::Uptime => in_container(containers, w, pid, out, |w, c, out| {
            uptime_view(containers, w, c, out)
        }),
        FileId::Cpuinfo => host_file(c"/proc/cpuinfo", out),
        FileId::Diskstats => host_file(c"/proc/diskstats", out),
        FileId::Loadavg => host_file(c"/proc/loadavg", out),
        FileId::Slabinfo => host_file(c"/proc/slabinfo", out),
        FileId::Stat => host_file(c"/proc/stat", out),
        FileId::CpuOnline => host_file(c"/sys/devices/system/cpu/online", out),
    }
}

/// Resolve the caller's container and run `view` for it. When the container's cgroups
/// went away under a cached entry (ENODEV, ENOENT), resolve again once.
fn in_container(
    containers: &Containers,
    w: &mut Worker,
    pid: u32,
    out: &mut Vec<u8>,
    view: impl Fn(&mut Worker, &Container, &mut Vec<u8>) -> io::Result<()>,
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

/// How long a read of an input that the kernel itself refreshes lazily (host meminfo,
/// memcg statistics: per-CPU counters folded in batches) may be reused. Nothing a reader
/// could observe changes within it; at tens of thousands of reads a second it saves most
/// of the kernel's formatting work.
pub const INPUT_TTL: Duration = Duration::from_millis(5);

/// The host files a view starts from, kept open per worker (no contention on the
/// kernel's per-file lock) and re-read at offset 0.
pub struct HostFiles {
    meminfo: Option<OwnedFd>,
    /// When `Worker::host` last got /proc/meminfo.
    meminfo_at: Option<Instant>,
}

impl HostFiles {
    pub fn open() -> HostFiles {
        HostFiles {
            meminfo: kfile::open_path(c"/proc/meminfo").ok(),
            meminfo_at: None,
        }
    }
}

fn host_meminfo(w: &mut Worker) -> io::Result<()> {
    if w.files.meminfo_at.is_some_and(|t| t.elapsed() < INPUT_TTL) {
        return Ok(());
    }
    w.files.meminfo_at = None;
    match &w.files.meminfo {
        Some(fd) => kfile::reread(fd.as_fd(), &mut w.host)?,
        None => kfile::read_path(c"/proc/meminfo", &mut w.host)?,
    }
    w.files.meminfo_at = Some(Instant::now());
    Ok(())
}

fn memory_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
    file: FileId,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    host_meminfo(w)?;
    let Some(dir) = c.cgroup(&containers.hier, Controller::Memory) else {
        // No memory controller: nothing limits the container, so the host's values hold.
        return match file {
            FileId::Meminfo => {
                out.extend_from_slice(&w.host);
                Ok(())
            }
            _ => host_file(c"/proc/swaps", out),
        };
    };
    let m = MemoryInputs::gather(dir, &c.memory_stat, INPUT_TTL, &mut w.scratch)?;
    let host_swap = meminfo::host_value(&w.host, b"SwapTotal").unwrap_or(0);
    let swap = swaps::SwapView::new(&m, host_swap, opts.swap);
    match file {
        FileId::Meminfo => meminfo::render(&w.host, &m, &swap, out),
        _ => swaps::render(&swap, out),
    }
    Ok(())
}

fn uptime_view(
    containers: &Containers,
    w: &mut Worker,
    c: &Container,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)?;
    let boottime_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    let init_start_ns = c.ns_start_ticks.saturating_mul(1_000_000_000) / w.clk_tck;
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
