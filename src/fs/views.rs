//! From a file and a caller to the bytes it shows: gather the caller's container's inputs,
//! then call the pure renderer.

use std::io;

use super::Worker;
use super::tree::FileId;
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
        FileId::Meminfo | FileId::Swaps => {
            let c = containers.resolve(pid, &mut w.scratch)?;
            memory_view(containers, opts, w, &c, file, out)
        }
        FileId::Uptime => {
            let c = containers.resolve(pid, &mut w.scratch)?;
            uptime_view(containers, w, &c, out)
        }
        FileId::Cpuinfo => host_file(c"/proc/cpuinfo", out),
        FileId::Diskstats => host_file(c"/proc/diskstats", out),
        FileId::Loadavg => host_file(c"/proc/loadavg", out),
        FileId::Slabinfo => host_file(c"/proc/slabinfo", out),
        FileId::Stat => host_file(c"/proc/stat", out),
        FileId::CpuOnline => host_file(c"/sys/devices/system/cpu/online", out),
    }
}

fn host_file(path: &std::ffi::CStr, out: &mut Vec<u8>) -> io::Result<()> {
    kfile::read_path(path, out)
}

fn memory_view(
    containers: &Containers,
    opts: &ViewOptions,
    w: &mut Worker,
    c: &Container,
    file: FileId,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    kfile::read_path(c"/proc/meminfo", &mut w.host)?;
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
    let m = crate::cgroupfs::memory::MemoryInputs::gather(dir, &mut w.scratch)?;
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
fn cpu_usage_ns(dir: &crate::cgroupfs::dir::CgroupDir, buf: &mut Vec<u8>) -> Option<u64> {
    if dir.unified {
        dir.read(c"cpu.stat", buf).ok()?;
        let line = buf
            .split(|&c| c == b'\n')
            .find_map(|l| l.strip_prefix(b"usage_usec "))?;
        parse_u64(line)?.checked_mul(1000)
    } else {
        dir.read(c"cpuacct.usage", buf).ok()?;
        parse_u64(buf)
    }
}
