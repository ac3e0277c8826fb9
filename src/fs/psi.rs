//! PSI triggers through /proc/pressure (`--enable-psi-poll`).
//!
//! A program opens one of our pressure files read-write, writes `some|full <threshold us>
//! <window us>` and polls for POLLPRI, as with the kernel's file. The trigger is installed
//! on the kernel file that the open file shows (the container's cgroup `*.pressure`, or the
//! host's /proc/pressure file) through an fd of the daemon's own, owned by the open file's
//! entry here. One thread waits on every trigger fd with epoll; when one fires it remembers
//! the event and sends FUSE_NOTIFY_POLL for the kernel's handle of the open file, whose
//! pollers then ask again (FUSE_POLL) and get POLLPRI once, as psi_trigger_poll gives it.
//!
//! Nothing here waits: a FUSE_POLL is answered from memory and a poll(2) with timeout 0,
//! and a notification is a write to /dev/fuse that the kernel handles by waking its
//! waiters. A frozen or suspending host therefore never waits on the daemon: its pollers
//! sleep in poll(2) (interruptible, freezable) and no request is ever held.
//!
//! Successors continue the triggers from the registry file written here at each change
//! (see `Triggers::restore`): the trigger fds themselves where they can be had (kept across
//! execve on SIGUSR1, taken from the frozen predecessor with pidfd_getfd on --takeover),
//! so the kernel's windows run on and no event is lost; after a crash, triggers written
//! anew. Every waiting poller is then woken to ask the successor.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::proto::encode;
use crate::{info, warn, warn_each};

/// Triggers per kernel file's directory (a container's cgroup, or /proc/pressure for the
/// host's processes): past it a write fails with ENOSPC. Each trigger costs the daemon an
/// fd and the kernel a trigger on the cgroup; the kernel itself sets no number (a process
/// runs out of fds first, EMFILE at its open, which for a write would be misleading).
pub const MAX_PER_CGROUP: usize = 32;
/// Triggers over all containers: the daemon's fds stay far below its limit.
pub const MAX_TOTAL: usize = 4096;

/// What poll(2) reports for any file that is there to read and write.
pub const DEFAULT_POLLMASK: u32 =
    (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
const POLLPRI: u32 = libc::POLLPRI as u32;
const POLLERR: u32 = libc::POLLERR as u32;

/// A trigger as written: `some|full <threshold us> <window us>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub full: bool,
    pub threshold_us: u32,
    pub window_us: u32,
}

impl Spec {
    /// The bytes a write(2) to /proc/pressure/* carries, read as the kernel's psi_write
    /// does: at most 32 bytes, the last of them (the newline or NUL) dropped, then
    /// `sscanf("some %u %u")` or `"full %u %u"`. None where the kernel answers EINVAL
    /// before looking at the numbers; a number past 32 bits (which the kernel truncates)
    /// is refused too. The kernel checks the numbers when the trigger is installed.
    pub fn parse(data: &[u8]) -> Option<Spec> {
        let n = data.len().min(32).checked_sub(1)?;
        let text = &data[..n];
        let text = &text[..memchr::memchr(0, text).unwrap_or(text.len())];
        let (full, rest) = match (text.strip_prefix(b"some"), text.strip_prefix(b"full")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return None,
        };
        let (threshold_us, rest) = scan_u32(rest)?;
        let (window_us, _) = scan_u32(rest)?;
        Some(Spec {
            full,
            threshold_us,
            window_us,
        })
    }

    /// The trigger as the kernel file takes it: NUL-terminated, as /proc's psi_write drops
    /// the last byte and the cgroup file's stops at the NUL.
    pub fn text(&self) -> String {
        let kind = if self.full { "full" } else { "some" };
        format!("{kind} {} {}\0", self.threshold_us, self.window_us)
    }
}

/// `%u` of the kernel's sscanf: white space skipped, then decimal digits (no sign).
fn scan_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let start = b.iter().position(|c| !is_space(*c))?;
    let b = &b[start..];
    let end = b
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len());
    let v = std::str::from_utf8(&b[..end]).ok()?.parse().ok()?;
    Some((v, &b[end..]))
}

/// The kernel's isspace.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[derive(Debug)]
struct Trigger {
    spec: Spec,
    /// The node of the open file (a /proc/pressure file).
    node: u64,
    /// Whether the writer had CAP_SYS_RESOURCE (and so the fd was opened with it).
    privileged: bool,
    /// The kernel file the trigger is on, as /proc/self/fd names it.
    path: PathBuf,
    /// The trigger: closing it removes it. None once the kernel file is gone.
    fd: Option<OwnedFd>,
    /// The kernel's handle of the open file, once a poller asked to be notified.
    kh: Option<u64>,
    /// Events seen but not yet reported to a FUSE_POLL.
    pending: u32,
    /// Re-created from a predecessor's registry: the first write of the same trigger
    /// (a request the predecessor took but did not answer, sent again) succeeds.
    adopted: bool,
}

#[derive(Default)]
struct State {
    by_fh: HashMap<u64, Trigger>,
    /// Live trigger fds by the directory of their kernel file.
    per_cgroup: HashMap<PathBuf, usize>,
}

impl State {
    fn live(&self) -> usize {
        self.per_cgroup.values().sum()
    }

    /// Close the fd of `fh`'s trigger (its kernel file is gone, or the file is closed).
    fn close_fd(&mut self, epoll: &Epoll, fh: u64) {
        let Some(t) = self.by_fh.get_mut(&fh) else {
            return;
        };
        let Some(fd) = t.fd.take() else { return };
        let _ = epoll.delete(&fd);
        if let Some(dir) = t.path.parent()
            && let Some(n) = self.per_cgroup.get_mut(dir)
        {
            *n -= 1;
            if *n == 0 {
                self.per_cgroup.remove(dir);
            }
        }
    }
}

pub struct Triggers {
    epoll: Epoll,
    state: Mutex<State>,
    /// Where the triggers are written down for a successor.
    registry: PathBuf,
}

impl Triggers {
    /// Triggers written down in `registry` (a file in the runtime directory).
    pub fn new(registry: PathBuf) -> io::Result<Triggers> {
        Ok(Triggers {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            state: Mutex::default(),
            registry,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below leaves the state consistent at each step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write of `data` to open file `fh` of pressure node `node` by a caller with
    /// CAP_SYS_RESOURCE (`privileged`) or without; `open` gives a new read-write fd on the
    /// kernel file the caller's container reads there, opened with the caller's
    /// CAP_SYS_RESOURCE, which decides what the kernel allows. The count of
    /// bytes taken, or the errno the kernel's file would answer (EBUSY: this open file has
    /// a trigger; EINVAL: not a trigger, or one the kernel refuses), or ENOSPC past the
    /// limits.
    pub fn write(
        &self,
        fh: u64,
        node: u64,
        privileged: bool,
        data: &[u8],
        open: impl FnOnce() -> io::Result<OwnedFd>,
    ) -> Result<u32, i32> {
        let taken = u32::try_from(data.len()).map_err(|_| libc::EINVAL)?;
        let already = self.lock().by_fh.get(&fh).map(|t| (t.adopted, t.spec));
        let spec = match already {
            // A request the predecessor took and we were sent again: the same trigger.
            Some((true, spec)) if Spec::parse(data) == Some(spec) => {
                if let Some(t) = self.lock().by_fh.get_mut(&fh) {
                    t.adopted = false;
                }
                return Ok(taken);
            }
            Some(_) => return Err(libc::EBUSY),
            None => Spec::parse(data).ok_or(libc::EINVAL)?,
        };
        let fd = as_caller(privileged, open).map_err(|e| super::errno(&e))?;
        let path = fd_path(&fd).map_err(|e| super::errno(&e))?;
        nix::unistd::write(&fd, spec.text().as_bytes()).map_err(|e| e as i32)?;
        self.insert(
            fh,
            Trigger {
                spec,
                node,
                privileged,
                path,
                fd: Some(fd),
                kh: None,
                pending: 0,
                adopted: false,
            },
        )?;
        Ok(taken)
    }

    /// Keep trigger `t` for `fh` and wait on it; on failure its fd closes with it.
    fn insert(&self, fh: u64, t: Trigger) -> Result<(), i32> {
        let mut s = self.lock();
        if s.by_fh.contains_key(&fh) {
            return Err(libc::EBUSY);
        }
        let dir = t.path.parent().unwrap_or(Path::new("/")).to_owned();
        if t.fd.is_some() {
            let here = s.per_cgroup.get(&dir).copied().unwrap_or(0);
            if here >= MAX_PER_CGROUP || s.live() >= MAX_TOTAL {
                warn_each!(
                    "PSI triggers: {} has {here} (at most {MAX_PER_CGROUP}), the daemon {} (at most {MAX_TOTAL}); a new one refused with ENOSPC",
                    dir.display(),
                    s.live()
                );
                return Err(libc::ENOSPC);
            }
        }
        if let Some(fd) = &t.fd {
            self.epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLPRI, fh))
                .map_err(|e| e as i32)?;
            *s.per_cgroup.entry(dir).or_default() += 1;
        }
        s.by_fh.insert(fh, t);
        self.record(&s);
        Ok(())
    }

    /// FUSE_POLL of open file `fh` of a pressure file: the events ready now, as
    /// psi_trigger_poll reports them (a trigger's event once; an open file without a
    /// trigger, or whose cgroup is gone, POLLERR|POLLPRI). With `notify`, `kh` is
    /// remembered for FUSE_NOTIFY_POLL.
    pub fn poll(&self, fh: u64, kh: u64, notify: bool) -> u32 {
        let mut s = self.lock();
        let Some(t) = s.by_fh.get_mut(&fh) else {
            return DEFAULT_POLLMASK | POLLERR | POLLPRI;
        };
        let learnt = notify && t.kh != Some(kh);
        if notify {
            t.kh = Some(kh);
        }
        let revents = match &t.fd {
            None => POLLERR | POLLPRI,
            Some(fd) => {
                // An event the epoll thread has not taken yet: reading it clears it, as a
                // FUSE_POLL of this open file should.
                let mut pfd = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLPRI,
                )];
                let now = match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO) {
                    Ok(1) => pfd[0].revents().map_or(0, |r| r.bits() as u32),
                    _ => 0,
                };
                let r = (t.pending | now) & (POLLPRI | POLLERR);
                t.pending = 0;
                r
            }
        };
        if learnt {
            self.record(&s);
        }
        DEFAULT_POLLMASK | revents
    }

    /// The open file `fh` is closed: its trigger goes.
    pub fn release(&self, fh: u64) {
        let mut s = self.lock();
        if !s.by_fh.contains_key(&fh) {
            return;
        }
        s.close_fd(&self.epoll, fh);
        s.by_fh.remove(&fh);
        self.record(&s);
    }

    /// Wait for triggers to fire and wake their pollers through `dev`, for as long as the
    /// process serves. The only thread that waits on triggers.
    pub fn run(&self, dev: BorrowedFd<'_>) {
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    warn!("PSI triggers: epoll_wait failed ({e}); pollers will not be woken");
                    return;
                }
            };
            let mut wake = Vec::new();
            {
                let mut s = self.lock();
                for ev in &events[..n] {
                    let fh = ev.data();
                    let gone = ev.events().contains(EpollFlags::EPOLLERR);
                    if gone {
                        // The cgroup was removed: the kernel reports POLLERR|POLLPRI
                        // from now on. Our fd goes; pollers see the error.
                        s.close_fd(&self.epoll, fh);
                    }
                    if let Some(t) = s.by_fh.get_mut(&fh) {
                        t.pending |= POLLPRI;
                        wake.extend(t.kh);
                    }
                }
            }
            for kh in wake {
                notify(dev, kh);
            }
        }
    }

    /// Write the triggers down for a successor: one line each, `fh kh node full threshold
    /// window privileged pid fd path` (kh 0: none yet; fd -1: none), replaced in one rename so a crash
    /// leaves the old list or the new one.
    fn record(&self, s: &State) {
        let mut text = String::new();
        let pid = std::process::id();
        for (fh, t) in &s.by_fh {
            let Some(path) = t.path.to_str().filter(|p| !p.contains('\n')) else {
                continue;
            };
            text.push_str(&format!(
                "{fh} {} {} {} {} {} {} {pid} {} {path}\n",
                t.kh.unwrap_or(0),
                t.node,
                u8::from(t.spec.full),
                t.spec.threshold_us,
                t.spec.window_us,
                u8::from(t.privileged),
                t.fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            ));
        }
        let tmp = self.registry.with_extension("new");
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &self.registry));
        if let Err(e) = written {
            warn_each!(
                "PSI triggers: cannot write {} ({e}): a successor would not re-create them",
                self.registry.display()
            );
        }
    }

    /// Forget a registry left by an earlier mount: its open files are gone.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.registry);
    }

    /// SIGUSR1: keep every trigger fd open across execve, for the new image (`restore`).
    /// Undone by `after_failed_exec`.
    pub fn before_exec(&self) {
        self.set_cloexec(false);
    }

    /// The execve failed: the trigger fds are ours alone again.
    pub fn after_failed_exec(&self) {
        self.set_cloexec(true);
    }

    fn set_cloexec(&self, on: bool) {
        let s = self.lock();
        for fd in s.by_fh.values().filter_map(|t| t.fd.as_ref()) {
            if let Err(e) = crate::upgrade::set_cloexec(fd.as_fd(), on) {
                warn_each!("PSI triggers: cannot set close-on-exec to {on} ({e})");
            }
        }
    }

    /// Continue the triggers of a predecessor (an upgrade, a takeover, a restart after a
    /// crash) from its registry, and wake every poller it was to notify: each asks again
    /// and gets this process's answer. `taken` holds the trigger fds taken from a
    /// predecessor process (`take_fds`). A trigger whose fd cannot be had is written
    /// anew: its window starts again (and on Linux 6.18 a new trigger on a cgroup that
    /// stalled before may report once at its first update, idle or not). One whose kernel
    /// file is gone answers POLLERR|POLLPRI, as the kernel's would. `adopt` makes `fh` an
    /// open file of node `node` here too.
    pub fn restore(&self, dev: BorrowedFd<'_>, mut taken: Taken, adopt: impl Fn(u64, u64)) {
        let Ok(text) = std::fs::read_to_string(&self.registry) else {
            return;
        };
        let (mut kept, mut anew, mut lost) = (0, 0, 0);
        let mut wake = Vec::new();
        for line in text.lines() {
            let Some(r) = Record::parse(line).filter(|r| is_pressure_file(&r.path)) else {
                warn!("PSI triggers: skipping a malformed registry line: {line:?}");
                continue;
            };
            let inherited = match taken.remove(&(r.pid, r.fd)) {
                Some(fd) => Some(fd),
                None if r.pid == std::process::id() => inherit(r.fd),
                None => None,
            }
            .filter(|fd| fd_path(fd).is_ok_and(|p| p == r.path));
            let fd = match inherited {
                Some(fd) => {
                    kept += 1;
                    Ok(fd)
                }
                None => rewrite(&r.path, &r.spec, r.privileged).inspect(|_| anew += 1),
            };
            let fd = fd
                .inspect_err(|e| {
                    lost += 1;
                    info!(
                        "PSI triggers: cannot re-create the trigger on {} ({e}): its pollers get POLLERR",
                        r.path.display()
                    );
                })
                .ok();
            let t = Trigger {
                spec: r.spec,
                node: r.node,
                privileged: r.privileged,
                path: r.path,
                pending: if fd.is_some() { 0 } else { POLLERR | POLLPRI },
                fd,
                kh: (r.kh != 0).then_some(r.kh),
                adopted: true,
            };
            if self.insert(r.fh, t).is_ok() {
                adopt(r.fh, r.node);
                wake.extend((r.kh != 0).then_some(r.kh));
            }
        }
        self.record(&self.lock());
        info!(
            "PSI triggers: continued {kept} of the predecessor's, re-created {anew}, {lost} gone"
        );
        for kh in wake {
            notify(dev, kh);
        }
    }
}

/// Trigger fds taken from a predecessor process, by its (pid, fd number).
pub type Taken = HashMap<(u32, i32), OwnedFd>;

/// --takeover: take the trigger fds of the predecessor `pid` that its registry in
/// `runtime_dir` names, while it is frozen and has not yet exited (pidfd_getfd, Linux
/// 5.6+; ours as root). Those it cannot take are written anew by `restore`.
pub fn take_fds(runtime_dir: &Path, pid: u32) -> Taken {
    let mut taken = Taken::new();
    let Ok(text) = std::fs::read_to_string(runtime_dir.join(REGISTRY)) else {
        return taken;
    };
    let Ok(pidfd) = crate::container::pidns::pidfd_open(pid) else {
        return taken;
    };
    for r in text.lines().filter_map(Record::parse) {
        if r.pid != pid || r.fd < 0 {
            continue;
        }
        // SAFETY: pidfd_getfd takes a pidfd, an fd number and flags, and returns a new
        // fd (close-on-exec) or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                pidfd.as_raw_fd() as libc::c_long,
                r.fd as libc::c_long,
                0 as libc::c_long,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just installed this fd for us and nothing else owns it.
            taken.insert((pid, r.fd), unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
    }
    taken
}

/// The registry's name in the runtime directory.
pub const REGISTRY: &str = "psi-triggers";

/// An fd a predecessor image left open across execve, if it is still open.
fn inherit(fd: i32) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: F_GETFD on a number only asks whether it is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the registry of this process's previous image names this fd as a trigger
    // fd it kept open across execve for us; nothing else in this image owns it (the path
    // is checked by the caller before use, and a mismatch closes it).
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::upgrade::set_cloexec(fd.as_fd(), true).ok()?;
    Some(fd)
}

/// Whether `path` names a pressure file (`rewrite` checks that it is the kernel's), the
/// only files a registry may name.
fn is_pressure_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let kind = |n: &str| matches!(n, "cpu" | "io" | "memory" | "irq");
    let plain = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    path.is_absolute()
        && plain
        && match name.strip_suffix(".pressure") {
            Some(k) => kind(k),
            None => kind(name) && path.parent() == Some(Path::new("/proc/pressure")),
        }
}

/// The path /proc/self/fd gives for `fd`.
fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `open`, with CAP_SYS_RESOURCE only when the caller has it.
fn as_caller(privileged: bool, open: impl FnOnce() -> io::Result<OwnedFd>) -> io::Result<OwnedFd> {
    match privileged {
        true => open(),
        false => crate::caps::without(crate::caps::CAP_SYS_RESOURCE, open),
    }
}

/// A new trigger `spec` on the kernel file `path`, for a caller with CAP_SYS_RESOURCE or
/// not (`privileged`).
fn rewrite(path: &Path, spec: &Spec, privileged: bool) -> io::Result<OwnedFd> {
    let p =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let fd = as_caller(privileged, || crate::kfile::open_rw(None, &p))?;
    let fs = nix::sys::statfs::fstatfs(&fd)?.filesystem_type();
    if fs != nix::sys::statfs::CGROUP2_SUPER_MAGIC && fs != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(io::Error::other("not a cgroup2 or proc file"));
    }
    nix::unistd::write(&fd, spec.text().as_bytes())?;
    Ok(fd)
}

/// One line of the registry.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    fh: u64,
    kh: u64,
    node: u64,
    spec: Spec,
    privileged: bool,
    /// The process that held the trigger fd, and its number there (-1: none).
    pid: u32,
    fd: i32,
    path: PathBuf,
}

impl Record {
    /// A registry line; None when malformed (the file is the daemon's, but read back by
    /// another process, perhaps another version).
    pub fn parse(line: &str) -> Option<Record> {
        let mut f = line.splitn(10, ' ');
        let mut num = || f.next()?.parse::<i64>().ok();
        let (fh, kh, node, full) = (num()?, num()?, num()?, num()?);
        let threshold_us = u32::try_from(num()?).ok()?;
        let window_us = u32::try_from(num()?).ok()?;
        let privileged = num()? == 1;
        let pid = u32::try_from(num()?).ok()?;
        let fd = i32::try_from(num()?).ok()?;
        Some(Record {
            fh: fh as u64,
            kh: kh as u64,
            node: node as u64,
            spec: Spec {
                full: full == 1,
                threshold_us,
                window_us,
            },
            privileged,
            pid,
            fd,
            path: PathBuf::from(f.next()?),
        })
    }
}

/// FUSE_NOTIFY_POLL: the kernel wakes whoever polls the open file `kh` (nothing when no
/// one does any more). It never waits for anything.
fn notify(dev: BorrowedFd<'_>, kh: u64) {
    if let Err(e) = nix::unistd::write(dev, &encode::notify_poll(kh)) {
        warn_each!("PSI triggers: FUSE_NOTIFY_POLL failed ({e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(full: bool, threshold_us: u32, window_us: u32) -> Option<Spec> {
        Some(Spec {
            full,
            threshold_us,
            window_us,
        })
    }

    #[test]
    fn parses_as_the_kernels_proc_file_does() {
        assert_eq!(
            Spec::parse(b"some 150000 2000000\0"),
            spec(false, 150000, 2000000)
        );
        assert_eq!(Spec::parse(b"full 1 2000000\n"), spec(true, 1, 2000000));
        // The last byte is dropped: without a terminator the window loses a digit.
        assert_eq!(
            Spec::parse(b"some 150000 2000000"),
            spec(false, 150000, 200000)
        );
        // sscanf: spaces before numbers optional, anything after the window ignored.
        assert_eq!(Spec::parse(b"some5 \t7 junk\0"), spec(false, 5, 7));
        // 32 bytes at most are read, the 32nd dropped.
        let long = format!("some 1{}2000000\0", " ".repeat(23));
        assert_eq!(Spec::parse(long.as_bytes()), spec(false, 1, 20));
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        for bad in [
            &b""[..],
            b"\0",
            b"some\0",
            b"some 1\0",
            b"Some 1 2\0",
            b" some 1 2\0",
            b"some -1 2\0",
            b"some +1 2\0",
            b"some 1 99999999999\0",
            b"bogus 1 2\0",
            b"some 1\x002\0",
        ] {
            assert_eq!(Spec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn text_round_trips() {
        let s = Spec::parse(b"full 500000 4000000\n").unwrap();
        assert_eq!(s.text(), "full 500000 4000000\0");
        assert_eq!(Spec::parse(s.text().as_bytes()), Some(s));
    }

    #[test]
    fn a_registry_names_pressure_files_only() {
        for ok in [
            "/proc/pressure/cpu",
            "/proc/pressure/irq",
            "/sys/fs/cgroup/unified/lxc/c1/memory.pressure",
            "/sys/fs/cgroup/a b/io.pressure",
        ] {
            assert!(is_pressure_file(Path::new(ok)), "{ok}");
        }
        for bad in [
            "/etc/shadow",
            "/proc/pressure/../sys/kernel/x",
            "/proc/self/pressure/cpu",
            "/sys/fs/cgroup/x/cgroup.procs",
            "/sys/fs/cgroup/../../etc/cpu.pressure",
            "cpu.pressure",
        ] {
            assert!(!is_pressure_file(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn registry_lines() {
        let r =
            Record::parse("12 3 22 1 7 2000000 0 99 5 /sys/fs/cgroup/a b/cpu.pressure").unwrap();
        assert_eq!((r.fh, r.kh, r.node, r.pid, r.fd), (12, 3, 22, 99, 5));
        assert!(!r.privileged);
        assert_eq!(r.spec, spec(true, 7, 2000000).unwrap());
        assert_eq!(r.path, PathBuf::from("/sys/fs/cgroup/a b/cpu.pressure"));
        let r = Record::parse("12 3 22 1 7 2000000 1 99 -1 /p").unwrap();
        assert!(r.privileged && r.fd == -1);
        for bad in [
            "12 3 22 1 7",
            "12 x 22 1 7 2 0 1 1 /p",
            "12 3 22 1 7 99999999999 0 1 1 /p",
            "12 3 22 1 7 2 0 -1 1 /p",
            "12 3 22 1 7 2 0 1 1",
        ] {
            assert_eq!(Record::parse(bad), None, "{bad}");
        }
    }
}
