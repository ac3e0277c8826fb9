//! Crash survival: a small keeper process holds duplicates of the connection's /dev/fuse
//! files (and the io_uring ring arena), so a server that dies (SIGKILL, a crash) does not
//! take the mount with it, and starts a successor at once. On the classic transport the
//! successor has the kernel resend every request the dead server had read but not
//! answered (they sit in the processing queues of files the keeper still holds); on
//! io_uring it answers what the dead server's ring entries hold (ring::uring::recover).
//!
//! The keeper parses no request and no kernel text: it waits on the server's pidfd.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::container::pidns;
use crate::ring::Session;
use crate::upgrade::{self, RESUME_FLAG, field};
use crate::{info, warn_each};

/// The hidden flag that makes a process a keeper.
pub const KEEP_FLAG: &str = "--keep";

/// Start a keeper for this serving process. It is given duplicates of the connection's
/// files and the arguments to start a successor with.
pub fn spawn(s: &Session, exe: &Path, argv: &[OsString]) -> io::Result<u32> {
    // Close-on-exec here, so a process another thread starts meanwhile gets none of them;
    // only the keeper's child side clears the flag, between fork and exec.
    let (state, dups) = upgrade::describe(s)?;
    let raw: Vec<RawFd> = dups.iter().map(AsRawFd::as_raw_fd).collect();
    let numbers: Vec<String> = raw.iter().map(RawFd::to_string).collect();
    let state = format!("{state},fdnums={}", numbers.join(":"));
    let mut command = Command::new(exe);
    command
        .arg(KEEP_FLAG)
        .arg(state)
        .args(successor_args(argv))
        .stdin(Stdio::null());
    // SAFETY: runs in the forked child before exec; it only calls fcntl(2), which is
    // async-signal-safe, on fds open in the parent (`dups` lives until after spawn), and
    // allocates nothing (`raw` was built before the fork).
    unsafe {
        command.pre_exec(move || {
            for &fd in &raw {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(dups); // the keeper has its own now
    let pid = child.id();
    s.keeper.store(pid, Ordering::Relaxed);
    // The keeper outlives us by design; it is never waited for here.
    std::mem::forget(child);
    Ok(pid)
}

/// Our arguments without the hidden hand-over flags (and the program name).
pub fn successor_args(argv: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in argv.iter().skip(1) {
        if skip {
            skip = false;
        } else if a == RESUME_FLAG || a == KEEP_FLAG {
            skip = true;
        } else if a != "--takeover" {
            out.push(a.clone());
        }
    }
    out
}

/// The keeper's life: watch the server; when it dies with the mount still in place, start
/// a successor on the held files; when the mount is gone (a clean stop), leave.
pub fn run(state: &str, mountpoint: &Path, args: &[OsString]) -> Result<(), String> {
    // The server spawned us with its signals blocked (it takes them synchronously): the
    // keeper must die of SIGTERM when the server hands the mount over.
    let _ = nix::sys::signal::SigSet::all().thread_unblock();
    let fds: Vec<OwnedFd> = field(state, "fdnums")?
        .split(':')
        .map(|n| {
            let raw: RawFd = n.parse().map_err(|_| "a bad fd number".to_owned())?;
            // SAFETY: our parent passed these duplicates to us alone, open and inherited.
            Ok(unsafe { OwnedFd::from_raw_fd(raw) })
        })
        .collect::<Result<_, String>>()?;
    let numbers: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
    let mut server: u32 = field(state, "pid")?
        .parse()
        .map_err(|_| "a bad pid".to_owned())?;
    let mut child: Option<Child> = None;
    let mut backoff = Backoff::default();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = std::process::id();
    info!("keeper {me}: holding the connection for pid {server}");
    loop {
        let pidfd = pidns::pidfd_open(server).map_err(|e| format!("watching pid {server}: {e}"))?;
        pidns::wait_exit(&pidfd);
        // Our own successor: reap it. SIGKILL comes from outside (an operator, the OOM
        // killer); anything else is its own doing, and may happen at every start.
        let by_itself = child
            .take()
            .is_some_and(|mut c| c.wait().is_ok_and(|st| st.signal() != Some(libc::SIGKILL)));
        if !is_mounted(mountpoint) {
            info!("keeper {me}: pid {server} stopped and unmounted; leaving");
            return Ok(());
        }
        // The server died with the mount in place: a crash, or SIGKILL. One that dies at
        // every start must not make us spin (nor fill the log).
        std::thread::sleep(backoff.next(Instant::now(), by_itself));
        let base: Vec<&str> = state
            .split(',')
            .filter(|kv| {
                !kv.starts_with("fdnums=") && !kv.starts_with("pid=") && !kv.starts_with("keeper=")
            })
            .collect();
        let successor_state = format!(
            "{},pid={server},keeper={me},fdnums={}",
            base.join(","),
            numbers.join(":")
        );
        let c = Command::new(&exe)
            .arg(RESUME_FLAG)
            .arg(successor_state)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a successor: {e}"))?;
        warn_each!(
            "keeper {me}: pid {server} died; successor is pid {}",
            c.id()
        );
        server = c.id();
        child = Some(c);
    }
}

/// The wait before starting a successor: none after a server that lived a while or was
/// killed, else doubling from FIRST_WAIT up to LAST_WAIT while successors keep dying young
/// by themselves (failing at start, crashing).
#[derive(Default)]
struct Backoff {
    wait: Duration,
    started: Option<Instant>,
}

/// A successor that dies sooner than this after its start died young.
const YOUNG: Duration = Duration::from_secs(10);
const FIRST_WAIT: Duration = Duration::from_millis(100);
const LAST_WAIT: Duration = Duration::from_secs(5);

impl Backoff {
    /// How long to wait before the start due at `now`, the previous server having just
    /// died, `by_itself` or not.
    fn next(&mut self, now: Instant, by_itself: bool) -> Duration {
        let young = by_itself
            && self
                .started
                .is_some_and(|s| now.saturating_duration_since(s) < YOUNG);
        self.wait = if young {
            (self.wait * 2).clamp(FIRST_WAIT, LAST_WAIT)
        } else {
            Duration::ZERO
        };
        self.started = Some(now + self.wait);
        self.wait
    }
}

/// Whether lxcfs-uring's filesystem is still mounted at `mountpoint`. Without touching
/// the mount itself, which a dead server cannot answer: only its parent is resolved.
fn is_mounted(mountpoint: &Path) -> bool {
    let absolute = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_owned());
    let canonical: PathBuf = match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = canonical.to_string_lossy();
    info.lines().any(|l| {
        let mut f = l.split(' ');
        f.nth(4) == Some(want.as_ref()) && l.contains(" - fuse.lxcfs ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_that_die_young_are_started_ever_later_up_to_the_last_wait() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.next(t0, true), Duration::ZERO, "the first crash: at once");
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            now += Duration::from_millis(50) + b.wait;
            waits.push(b.next(now, true).as_millis());
        }
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // A successor that served a while: the next start is at once again.
        now += b.wait + YOUNG;
        assert_eq!(b.next(now, true), Duration::ZERO);
        assert_eq!(
            b.next(now + Duration::from_millis(50), true).as_millis(),
            100
        );
        // One killed from outside (SIGKILL) right after its start: at once too.
        assert_eq!(
            b.next(now + Duration::from_millis(200), false),
            Duration::ZERO
        );
    }
}
