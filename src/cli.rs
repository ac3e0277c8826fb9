//! The command line: a drop-in for lxcfs 6.x's, plus our own options. The man page is
//! generated from this same definition (`lxcfs-uring man`).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::ring::TransportKind;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "lxcfs-uring",
    version,
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    about = "FUSE filesystem that shows each container its own /proc and /sys/devices/system/cpu",
    long_about = "lxcfs-uring mounts a filesystem (usually on /var/lib/lxcfs) whose proc/meminfo, \
proc/cpuinfo, proc/stat, proc/uptime and friends show the limits and usage of the container that \
reads them (its cgroups and pid namespace) instead of the host's. Bind-mount those files over a \
container's own. A drop-in for lxcfs.",
    after_help = "Signals: SIGINT, SIGTERM and SIGHUP unmount and exit; SIGUSR2 toggles showing \
the host's files unchanged (to tell a view problem from a host one).\n\
Examples:\n  lxcfs-uring /var/lib/lxcfs\n  lxcfs-uring -l --enable-cfs /var/lib/lxcfs\n  \
lxcfs-uring stats --runtime-dir /run\n  \
lxcfs-uring oci-hook --mountpoint /var/lib/lxcfs < state.json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where to mount, e.g. /var/lib/lxcfs (must exist).
    #[arg(required = true)]
    pub mountpoint: Option<PathBuf>,

    /// Print the version.
    #[arg(short = 'v', long, action = ArgAction::Version)]
    pub version: Option<bool>,

    /// Stay in the foreground (always the case; accepted for lxcfs compatibility).
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Log debug lines.
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Never show swap in meminfo and swaps.
    #[arg(short = 'u', long)]
    pub disable_swap: bool,

    /// Show 0 for Zswap and Zswapped in containers' meminfo (as lxcfs 7.0's -z).
    #[arg(short = 'z', long)]
    pub disable_zswap: bool,

    /// Show a container only ceil(quota / period) CPUs of its CFS quota, in cpuinfo, stat
    /// and sys/devices/system/cpu.
    #[arg(long)]
    pub enable_cfs: bool,

    /// Per-container load averages in proc/loadavg (else the host's), sampled every 5 s.
    #[arg(short = 'l', long)]
    pub enable_loadavg: bool,

    /// PSI triggers through proc/pressure/*: a program opens the file read-write, writes
    /// `some|full <threshold us> <window us>` and polls for POLLPRI, as with the host's.
    #[arg(long)]
    pub enable_psi_poll: bool,

    /// Show the cgroup hierarchies under cgroup/ (for runtimes without cgroup namespaces):
    /// each caller sees only its own cgroup and below, with pids in its own numbering, and
    /// may create, remove and configure cgroups there as the kernel would let it.
    #[arg(long)]
    pub enable_cgroup: bool,

    /// Accepted for lxcfs compatibility: pidfds are always used where the kernel has them.
    #[arg(long)]
    pub enable_pidfd: bool,

    /// FUSE mount options, comma-separated, as lxcfs takes them: allow_other,
    /// default_permissions, direct_io and nonempty are always in effect and accepted;
    /// anything else is refused.
    #[arg(short = 'o', value_name = "OPTIONS", value_parser = parse_mount_options, action = ArgAction::Append)]
    pub options: Vec<String>,

    /// Pidfile, locked while we run [default: <runtime-dir>/lxcfs.pid].
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,

    /// Directory for the pidfile and the control socket; one per instance to run several.
    #[arg(long, default_value = "/run")]
    pub runtime_dir: PathBuf,

    /// How requests travel between the kernel and us.
    #[arg(long, value_enum, default_value_t = TransportKind::Auto)]
    pub transport: TransportKind,

    /// The passthrough fast path: the kernel answers the reads of a file a thread opens
    /// again (open-read-close pollers) from a snapshot rendered at its open, with no
    /// round trip (Linux 6.9+, run as root; `auto` uses it where the kernel offers it).
    /// Files opened once and re-read, as procps does, stay served by the daemon.
    #[arg(long, value_enum, default_value_t = Passthrough::Auto)]
    pub passthrough: Passthrough,

    /// Take the live mount over from the instance running with the same --runtime-dir: it
    /// hands over its /dev/fuse connection (and io_uring entries) and exits; containers'
    /// mounts never notice. Fails, disturbing nothing, when none runs.
    #[arg(long)]
    pub takeover: bool,

    /// Run as the keeper of a serving process (internal; see src/keeper.rs).
    #[arg(long, hide = true)]
    pub keep: Option<String>,

    /// State handed over by a predecessor program image on a SIGUSR1 upgrade (internal).
    #[arg(long, hide = true)]
    pub resume: Option<String>,

    /// Worker threads of the classic transport [default: online CPUs]. The io_uring
    /// transport always runs one worker per online CPU, pinned to it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// Whether to use FUSE passthrough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Passthrough {
    /// Where the kernel offers it.
    Auto,
    /// Never.
    Off,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print the counters of the instance running with this runtime directory.
    Stats {
        /// The running instance's --runtime-dir.
        #[arg(long, default_value = "/run")]
        runtime_dir: PathBuf,
        /// In Prometheus text format.
        #[arg(long)]
        prometheus: bool,
    },
    /// OCI createContainer hook: bind-mount the daemon's views into a starting container.
    ///
    /// For runc, crun, Podman and CRI-O (contrib/oci/lxcfs-uring.json): bind-mounts the
    /// views of the daemon serving at --mountpoint over the container's /proc files and
    /// /sys/devices/system/cpu. Reads the container state on stdin. Exits 0 without
    /// mounting anything (one log line says why) when the daemon is not serving or the
    /// annotation io.lxcfs-uring.views is false; fails only on a malformed state.
    #[command(name = "oci-hook")]
    OciHook {
        /// Where the daemon is mounted.
        #[arg(long, default_value = "/var/lib/lxcfs")]
        mountpoint: PathBuf,
        /// Also append the log lines to this file (runc shows a successful hook's stderr
        /// nowhere).
        #[arg(long)]
        log_file: Option<PathBuf>,
    },
    /// Print the manual page (roff), generated from this command line.
    #[command(hide = true)]
    Man,
    /// Send a lookup through every CPU's io_uring entries and wait for the answers
    /// (internal: a handover's helper, see src/ring/fill.rs).
    #[command(hide = true, name = "fill-queues")]
    FillQueues {
        mountpoint: PathBuf,
        /// Lookups per CPU: the ring's entries per queue.
        #[arg(value_parser = clap::value_parser!(u16).range(1..=64))]
        depth: u16,
    },
}

/// FUSE options lxcfs users pass with -o that mean nothing else here.
const ACCEPTED_OPTIONS: [&str; 4] = [
    "allow_other",
    "default_permissions",
    "direct_io",
    "nonempty",
];

fn parse_mount_options(s: &str) -> Result<String, String> {
    for o in s.split(',').filter(|o| !o.is_empty()) {
        if !ACCEPTED_OPTIONS.contains(&o) {
            return Err(format!(
                "unknown mount option {o:?}: lxcfs-uring accepts {}",
                ACCEPTED_OPTIONS.join(", ")
            ));
        }
    }
    Ok(s.to_owned())
}

impl Cli {
    pub fn pidfile(&self) -> PathBuf {
        self.pidfile
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("lxcfs.pid"))
    }
}

/// The manual page, from the same definition as --help.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}
