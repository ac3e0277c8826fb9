//! Handing io_uring entries over without losing a request.
//!
//! When the task that armed a ring entry exits, a request the kernel routes to that entry
//! in the meantime fails with ECANCELED (fuse_uring_send_in_task on a terminating task).
//! An entry that already holds a request is safe: its request waits for whoever commits.
//! So before a planned handover (SIGUSR1, --takeover) the serving process stops answering
//! and a helper process sends lookups through every online CPU's queue until every entry
//! holds one; requests that come later wait in the kernel's queue. The successor answers
//! them all (uring::recover). So does a process whose worker failed before it exits
//! (`before_failed_exit`). A crash cannot be prepared for: see docs/design.md, "Crash recovery".

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Session;
use super::arena::Arena;
use super::uring::{OPCODE, is_request_opcode};
use crate::{cpulist, info, warn};

/// The mount this process serves, for `before_failed_exit`.
static MOUNTPOINT: OnceLock<PathBuf> = OnceLock::new();

/// Name the mount this process serves (once, when it starts serving it).
pub fn serving(mountpoint: &Path) {
    let _ = MOUNTPOINT.set(mountpoint.to_owned());
}

/// A worker failed and the process is about to exit for the keeper's successor to take
/// over. On io_uring, do what a planned handover does so that no request is lost: stop
/// answering, and fill every armed entry with a held request; `own` are the failed
/// worker's slots, whose entries hold what it was answering and are left as they are.
pub fn before_failed_exit(s: &Session, own: &[usize]) {
    let (Some(arena), Some(mountpoint)) = (s.arena.get(), MOUNTPOINT.get()) else {
        return;
    };
    let filled = s.freeze.freeze().and_then(|()| {
        let exe = std::env::current_exe()?;
        fill(arena, &exe, mountpoint, own)
    });
    match filled {
        Ok(helper) => info!(
            "every armed ring entry holds a request for the successor (helper {})",
            helper.id()
        ),
        Err(e) => warn!("cannot fill the ring entries before exiting ({e}): a read may fail"),
    }
}

/// The hidden subcommand that runs the helper.
pub const FILL_COMMAND: &str = "fill-queues";
/// From `cpu`, look up a name that never exists, so the lookup reaches the server through
/// that CPU's queue and fails once answered. The name is unique per caller (`i`, our pid),
/// since the kernel lets only one lookup of a name in a directory be in flight at a time.
fn probe(mountpoint: &Path, cpu: u32, i: usize) {
    super::uring::pin(cpu);
    let name = format!(".lxcfs-uring-handover-{}-{cpu}-{i}", std::process::id());
    let _ = std::fs::symlink_metadata(mountpoint.join(name));
}
/// How long to wait for the entries to fill; past it the handover goes on regardless.
const FILL_TIMEOUT: Duration = Duration::from_secs(2);

/// Fill every online CPU's entries of `arena` but the slots `skip` with a held request,
/// using the helper from `exe`. Returns the helper (the successor reaps it) once they are
/// full, or the timeout.
pub fn fill(arena: &Arena, exe: &Path, mountpoint: &Path, skip: &[usize]) -> io::Result<Child> {
    let depth = arena.depth();
    let mut slots = online_slots(depth)?;
    slots.retain(|i| !skip.contains(i));
    let helper = spawn_helper(exe, mountpoint, depth)?;
    let deadline = Instant::now() + FILL_TIMEOUT;
    while Instant::now() < deadline {
        let full = slots
            .iter()
            .all(|&i| arena.peek_u32(i, OPCODE).is_some_and(is_request_opcode));
        if full {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(helper)
}

/// The helper from `exe`: `depth` lookups at once from each online CPU (`run_helper`).
pub fn spawn_helper(exe: &Path, mountpoint: &Path, depth: usize) -> io::Result<Child> {
    Command::new(exe)
        .arg(FILL_COMMAND)
        .arg(mountpoint)
        .arg(depth.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
}

/// The arena slots of the queues of online CPUs (slots of queue k: k*depth..(k+1)*depth,
/// k the CPU's place among possible CPUs). Offline CPUs' queues get no requests.
fn online_slots(depth: usize) -> io::Result<Vec<usize>> {
    let possible = cpulist::read(c"/sys/devices/system/cpu/possible")?;
    let online = cpulist::read(c"/sys/devices/system/cpu/online")?;
    Ok(possible
        .iter()
        .enumerate()
        .filter(|(_, c)| online.contains(c))
        .flat_map(|(k, _)| k * depth..(k + 1) * depth)
        .collect())
}

/// The helper: `depth` lookups at once from each online CPU, each waiting for its answer.
pub fn run_helper(mountpoint: &Path, depth: usize) -> Result<(), String> {
    // Whatever the server let us inherit (a keeper's fds are inheritable while it starts
    // one) is not ours to hold: a helper waiting on the mount must not keep the connection.
    close_inherited();
    let online = cpulist::read(c"/sys/devices/system/cpu/online").map_err(|e| e.to_string())?;
    let threads: Vec<_> = online
        .iter()
        .flat_map(|&cpu| (0..depth).map(move |i| (cpu, i)))
        .map(|(cpu, i)| {
            let mountpoint = mountpoint.to_owned();
            std::thread::spawn(move || probe(&mountpoint, cpu, i))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Close every fd from 3 up: close_range(2), or one by one from /proc/self/fd on kernels
/// without it (before 5.9).
fn close_inherited() {
    // SAFETY: close_range takes three integers; it closes our fds from 3 up, none of which
    // this process uses.
    if unsafe { libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0) } == 0 {
        return;
    }
    let fds: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd >= 3)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: as above: nothing in this process uses an fd from 3 up (the directory's
        // own is closed already, and closing it again fails harmlessly).
        unsafe { libc::close(fd) };
    }
}
