//! What the end-to-end benches share: a FUSE server on a mountpoint of its own, stopped and
//! unmounted on drop, and the daemon's counters from /proc.
#![allow(dead_code)] // each bench uses a subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub name: &'static str,
    pub child: Child,
    pub mnt: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Run `cmd` with a fresh mountpoint `dir/name` appended, once it serves.
pub fn start(name: &'static str, dir: &Path, cmd: &mut Command) -> Server {
    let mnt = dir.join(name);
    std::fs::create_dir_all(&mnt).unwrap();
    let child = cmd
        .arg(&mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let s = Server { name, child, mnt };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.mnt.join("proc/meminfo").exists() {
        assert!(Instant::now() < deadline, "{name} did not mount");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map_or("", |x| x.1)
        .split_whitespace()
        .collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// A kB figure of /proc/<pid>/status (`VmRSS:`).
pub fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The guest's idle polling window for the run, restored on drop.
pub struct HaltPoll {
    was: String,
}

const HALT_POLL: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

impl HaltPoll {
    /// Set from the environment variable `var` (nanoseconds), if it is set.
    pub fn from_env(var: &str) -> Option<HaltPoll> {
        std::env::var(var).ok().map(|ns| HaltPoll::set(&ns))
    }

    fn set(ns: &str) -> HaltPoll {
        let was = std::fs::read_to_string(HALT_POLL)
            .expect("E2E_HALT_POLL_NS needs the haltpoll cpuidle driver (a KVM guest)");
        std::fs::write(HALT_POLL, ns).expect("set guest_halt_poll_ns");
        HaltPoll {
            was: was.trim().to_owned(),
        }
    }
}

impl Drop for HaltPoll {
    fn drop(&mut self) {
        let _ = std::fs::write(HALT_POLL, &self.was);
    }
}
