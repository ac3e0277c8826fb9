//! The command line: a drop-in for lxcfs's, plus our own options.

use std::path::PathBuf;

use clap::Parser;

use crate::ring::TransportKind;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "lxcfs-uring",
    version,
    about = "FUSE filesystem that shows each container its own /proc and /sys/devices/system/cpu",
    long_about = "lxcfs-uring mounts a filesystem (usually on /var/lib/lxcfs) whose proc/meminfo, \
proc/uptime, proc/swaps and friends show the limits and usage of the container that reads them \
(its cgroups and pid namespace) instead of the host's. Bind-mount those files over a container's \
own /proc files. A drop-in for lxcfs."
)]
pub struct Cli {
    /// Where to mount, e.g. /var/lib/lxcfs (must exist).
    pub mountpoint: PathBuf,

    /// Stay in the foreground (always the case; accepted for lxcfs compatibility).
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Log debug lines.
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Never show swap in meminfo and swaps.
    #[arg(short = 'u', long)]
    pub disable_swap: bool,

    /// Show a container only ceil(quota / period) CPUs of its CFS quota, in cpuinfo, stat
    /// and sys/devices/system/cpu.
    #[arg(long)]
    pub enable_cfs: bool,

    /// Per-container load averages in proc/loadavg (else the host's), sampled every 5 s.
    #[arg(short = 'l', long)]
    pub enable_loadavg: bool,

    /// Accepted for lxcfs compatibility: pidfds are always used where the kernel has them.
    #[arg(long)]
    pub enable_pidfd: bool,

    /// Pidfile, locked while we run [default: <runtime-dir>/lxcfs.pid].
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,

    /// Directory for the pidfile and the control socket.
    #[arg(long, default_value = "/run")]
    pub runtime_dir: PathBuf,

    /// How requests travel between the kernel and us.
    #[arg(long, value_enum, default_value_t = TransportKind::Auto)]
    pub transport: TransportKind,

    /// Worker threads for the classic transport [default: online CPUs].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl Cli {
    pub fn pidfile(&self) -> PathBuf {
        self.pidfile
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("lxcfs.pid"))
    }
}
