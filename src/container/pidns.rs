//! Finding the init of a caller's pid namespace without forking.
//!
//! lxcfs forks, setns()es and passes credentials over a socket for every new namespace
//! (~1.2 ms, and fork in a threaded daemon has crashed it). The kernel can answer directly:
//! since 6.11 the NS_GET_TGID_FROM_PIDNS ioctl translates pid 1 of a namespace into ours;
//! on older kernels we walk parents through /proc/<pid>/status's NSpid line.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::kfile::{self, ProcPath, parse_u64};

/// `_IO(0xb7, 0x2)` from linux/nsfs.h: the parent of a pid namespace.
const NS_GET_PARENT: libc::c_ulong = 0xb702;
/// `_IOR(0xb7, 0x6, int)`: a thread id of the namespace, in ours.
const NS_GET_PID_FROM_PIDNS: libc::c_ulong = 0x8004_b706;
/// `_IOR(0xb7, 0x7, int)`: a pid of the namespace, in ours (its thread group's id).
const NS_GET_TGID_FROM_PIDNS: libc::c_ulong = 0x8004_b707;
/// `_IOR(0xb7, 0x8, int)`: a pid of ours, in the namespace.
const NS_GET_PID_IN_PIDNS: libc::c_ulong = 0x8004_b708;

/// The inode of `pid`'s pid namespace: the key of a namespace while it lives.
pub fn pidns_inode(pid: u32) -> io::Result<u64> {
    let st = nix::sys::stat::stat(ProcPath::new(pid, "ns/pid").as_cstr())?;
    Ok(st.st_ino)
}

/// `_IO(0xFF, 5)` from linux/pidfd.h (Linux 6.11+): the pid namespace of a pidfd's
/// process, as an nsfs file.
const PIDFD_GET_PID_NAMESPACE: libc::c_ulong = 0xff05;

/// The pid namespace of a process (an nsfs file) and its inode, the namespace's key while
/// it lives. From the process's pidfd where there is one and the kernel answers (6.11+):
/// no /proc path walk, which costs ~40 us for a process /proc has not looked up yet
/// (every new process reading a file); else through /proc/<pid>/ns/pid.
pub fn pidns_of(pidfd: Option<&OwnedFd>, pid: u32) -> io::Result<(OwnedFd, u64)> {
    let ns = match pidfd.map(pidfd_pidns) {
        Some(Ok(ns)) => ns,
        Some(Err(e)) if !unsupported(&e) => return Err(e),
        _ => open_pidns(pid)?,
    };
    let ino = nix::sys::stat::fstat(&ns)?.st_ino;
    Ok((ns, ino))
}

fn pidfd_pidns(pidfd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: this pidfd ioctl takes no argument and returns a new fd or -1.
    let fd = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_PID_NAMESPACE as _, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The pid (in our namespace) of the init of `ns`, the pid namespace of `pid`.
pub fn init_of(ns: &OwnedFd, pid: u32, scratch: &mut Vec<u8>) -> io::Result<u32> {
    match ioctl_pid(ns, NS_GET_TGID_FROM_PIDNS, 1) {
        Ok(p) => Ok(p),
        Err(e) if unsupported(&e) => init_by_walk(pid, scratch),
        Err(e) => Err(e),
    }
}

/// Translate `arg` with a pid-namespace ioctl on the nsfs file `ns`.
fn ioctl_pid(ns: &OwnedFd, request: libc::c_ulong, arg: u32) -> io::Result<u32> {
    // SAFETY: the NS_GET_*PID* ioctls take an integer argument by value and touch no
    // memory of ours; `ns` is an open nsfs file for the whole call.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), request as _, libc::c_ulong::from(arg)) };
    match r {
        r if r > 0 => Ok(r as u32),
        0 => Err(io::Error::from_raw_os_error(libc::ESRCH)),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The pid that `tid` (a pid of ours) has in the pid namespace of `member`.
pub fn pid_in_ns_of(member: u32, tid: u32, scratch: &mut Vec<u8>) -> io::Result<u32> {
    PidNs::of(member)?
        .ns_pid(tid, scratch)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// One process's pid namespace, for translating pids between it and ours (the /cgroup
/// tree's tasks and cgroup.procs, loadavg's last pid).
pub struct PidNs {
    /// The namespace's nsfs file; None when it is our own (pids are the same).
    ns: Option<OwnedFd>,
    ino: u64,
    /// The process it was found from.
    member: u32,
    /// How many namespaces below ours it is: needed (and read) only before Linux 6.11.
    level: std::cell::OnceCell<Option<usize>>,
}

impl PidNs {
    /// The pid namespace of `pid` (a pid of ours).
    pub fn of(pid: u32) -> io::Result<PidNs> {
        static OURS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let (ns, ino) = pidns_of(None, pid)?;
        let ours = *OURS.get_or_init(|| pidns_inode(std::process::id()).unwrap_or(0));
        Ok(PidNs {
            ns: (ino != ours).then_some(ns),
            ino,
            member: pid,
            level: std::cell::OnceCell::new(),
        })
    }

    /// How many namespaces below ours this one is, from the member's NSpid line.
    fn level(&self, scratch: &mut Vec<u8>) -> Option<usize> {
        *self.level.get_or_init(|| {
            kfile::read_path(ProcPath::new(self.member, "status").as_cstr(), scratch).ok()?;
            nspid(scratch)?.len().checked_sub(1)
        })
    }

    /// The pid our `pid` has in this namespace; None when it is not visible there.
    pub fn ns_pid(&self, pid: u32, scratch: &mut Vec<u8>) -> Option<u32> {
        let Some(ns) = &self.ns else {
            return Some(pid);
        };
        match ioctl_pid(ns, NS_GET_PID_IN_PIDNS, pid) {
            Ok(p) => Some(p),
            Err(e) if unsupported(&e) => self.ns_pid_by_status(pid, scratch),
            Err(_) => None,
        }
    }

    /// Our pid for the pid `pid` of this namespace (a thread id or a process id).
    pub fn host_pid(&self, pid: u32, scratch: &mut Vec<u8>) -> io::Result<u32> {
        let Some(ns) = &self.ns else {
            return Ok(pid);
        };
        match ioctl_pid(ns, NS_GET_PID_FROM_PIDNS, pid) {
            Err(e) if unsupported(&e) => self.host_pid_by_scan(pid, scratch),
            r => r,
        }
    }

    /// Before Linux 6.11: NSpid lists a process's pid in each namespace from ours down;
    /// the entry at our level counts only if its namespace there is this one.
    fn ns_pid_by_status(&self, pid: u32, scratch: &mut Vec<u8>) -> Option<u32> {
        let level = self.level(scratch)?;
        kfile::read_path(ProcPath::new(pid, "status").as_cstr(), scratch).ok()?;
        let ids = nspid(scratch)?;
        let at_level = *ids.get(level)?;
        let mut ns = open_pidns(pid).ok()?;
        for _ in 0..ids.len() - 1 - level {
            ns = ns_parent(&ns).ok()?;
        }
        let ino = nix::sys::stat::fstat(&ns).ok()?.st_ino;
        (ino == self.ino).then_some(at_level)
    }

    /// Before Linux 6.11: look through every thread for the one with that pid here.
    fn host_pid_by_scan(&self, pid: u32, scratch: &mut Vec<u8>) -> io::Result<u32> {
        for proc in numeric_entries("/proc".as_ref())? {
            let tasks = numeric_entries(format!("/proc/{proc}/task").as_ref()).unwrap_or_default();
            if let Some(t) = tasks
                .into_iter()
                .find(|&t| self.ns_pid_by_status(t, scratch) == Some(pid))
            {
                return Ok(t);
            }
        }
        Err(io::Error::from_raw_os_error(libc::ESRCH))
    }
}

/// Whether an nsfs ioctl failed only because this kernel does not have it.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL))
}

fn open_pidns(pid: u32) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        ProcPath::new(pid, "ns/pid").as_cstr(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// The parent of a pid namespace (NS_GET_PARENT, Linux 4.9+).
fn ns_parent(ns: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new fd or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The pids on the NSpid line of /proc/<pid>/status, ours first.
fn nspid(status: &[u8]) -> Option<Vec<u32>> {
    let line = kfile::lines(status).find_map(|l| l.strip_prefix(b"NSpid:"))?;
    kfile::u32_words(line).collect()
}

/// The numeric names in a /proc directory.
fn numeric_entries(dir: &std::path::Path) -> io::Result<Vec<u32>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// Walk up the parents while they stay in the namespace, until the one that is pid 1 there.
fn init_by_walk(pid: u32, scratch: &mut Vec<u8>) -> io::Result<u32> {
    let mut p = pid;
    let mut depth = None;
    for _ in 0..4096 {
        kfile::read_path(ProcPath::new(p, "status").as_cstr(), scratch)?;
        let st = parse_status(scratch).ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        match depth {
            None => depth = Some(st.nspid_depth),
            Some(d) if d != st.nspid_depth => break, // left the namespace
            _ => {}
        }
        if st.nspid_last == 1 {
            return Ok(p);
        }
        if st.ppid == 0 {
            break;
        }
        p = st.ppid;
    }
    Err(io::Error::from_raw_os_error(libc::ESRCH))
}

#[derive(Debug, PartialEq, Eq)]
/// What the init lookup needs of /proc/<pid>/status.
pub struct Status {
    pub ppid: u32,
    /// How many namespaces deep the process is (entries on the NSpid line).
    pub nspid_depth: usize,
    /// Its pid in its own namespace.
    pub nspid_last: u32,
}

/// Parse the PPid and NSpid lines of /proc/<pid>/status.
pub fn parse_status(text: &[u8]) -> Option<Status> {
    let mut ppid = None;
    let mut ns = None;
    for line in kfile::lines(text) {
        let line = line.trim_ascii_end();
        if let Some(v) = line.strip_prefix(b"PPid:") {
            ppid = parse_u64(v).and_then(|v| u32::try_from(v).ok());
        } else if let Some(v) = line.strip_prefix(b"NSpid:") {
            let (n, last) = kfile::u32_words(v).fold((0, None), |(n, _), id| (n + 1, id));
            ns = Some((n, last?));
        }
    }
    let (nspid_depth, nspid_last) = ns?;
    Some(Status {
        ppid: ppid?,
        nspid_depth,
        nspid_last,
    })
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat).
pub fn start_ticks(pid: u32, scratch: &mut Vec<u8>) -> io::Result<u64> {
    kfile::read_path(ProcPath::new(pid, "stat").as_cstr(), scratch)?;
    parse_start_ticks(scratch).ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
}

/// The comm field may hold spaces and ')': fields are counted after the last ')'.
pub fn parse_start_ticks(stat: &[u8]) -> Option<u64> {
    let close = memchr::memrchr(b')', stat)?;
    // After ") " come fields 3 (state) onward: starttime is the 20th of them.
    let rest = stat.get(close + 1..)?;
    let field = rest
        .split(|&c| c == b' ')
        .filter(|s| !s.is_empty())
        .nth(19)?;
    parse_u64(field)
}

/// A pidfd: lets us tell, with one poll, whether a cached init has exited (and its pid,
/// and so its namespace's inode, may have been reused).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    pidfd_open_flags(pid, 0)
}

/// A pidfd for one thread (PIDFD_THREAD, Linux 6.9+): request headers name threads.
pub fn pidfd_open_thread(tid: u32) -> io::Result<OwnedFd> {
    pidfd_open_flags(tid, libc::O_EXCL as libc::c_long)
}

fn pidfd_open_flags(pid: u32, flags: libc::c_long) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `pidfd` has exited.
pub fn has_exited(pidfd: &OwnedFd) -> bool {
    poll_exit(pidfd, PollTimeout::ZERO)
}

/// Block until the process behind `pidfd` exits.
pub fn wait_exit(pidfd: &OwnedFd) {
    while !poll_exit(pidfd, PollTimeout::NONE) {}
}

/// Poll `pidfd` for exit for up to `timeout`. True once it has exited, or when polling
/// itself fails (the caller must not wait on a broken fd).
fn poll_exit(pidfd: &OwnedFd, timeout: PollTimeout) -> bool {
    let mut p = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut p, timeout) {
        Ok(n) => n > 0,
        Err(e) => e != nix::errno::Errno::EINTR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let t = b"Name:\tsh\nPPid:\t77\nNSpid:\t1234\t5\t1\n";
        assert_eq!(
            parse_status(t),
            Some(Status {
                ppid: 77,
                nspid_depth: 3,
                nspid_last: 1
            })
        );
        assert_eq!(parse_status(b"PPid:\t1\n"), None);
        assert_eq!(parse_status(b"NSpid:\t1\n"), None);
        assert_eq!(parse_status(b"PPid:\tx\nNSpid:\t1\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn start_time_field() {
        let mut s = b"42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 ".to_vec();
        s.extend_from_slice(b"98765 1000 10\n");
        assert_eq!(parse_start_ticks(&s), Some(98765));
        assert_eq!(parse_start_ticks(b"42 (x) S 1"), None);
        assert_eq!(parse_start_ticks(b"no paren"), None);
    }

    #[test]
    fn own_namespace() {
        let me = std::process::id();
        let mut scratch = Vec::new();
        assert!(pidns_inode(me).unwrap() > 0);
        assert!(start_ticks(me, &mut scratch).unwrap() > 0);
        // In the host namespace, init is pid 1 both ways.
        let pidfd = pidfd_open(me).unwrap();
        let (ns, ino) = pidns_of(Some(&pidfd), me).unwrap();
        assert_eq!(
            ino,
            pidns_inode(me).unwrap(),
            "the pidfd and /proc name one namespace"
        );
        assert_eq!(pidns_of(None, me).unwrap().1, ino);
        if pidns_inode(1).ok() == pidns_inode(me).ok() {
            assert_eq!(init_of(&ns, me, &mut scratch).unwrap(), 1);
            assert_eq!(init_by_walk(me, &mut scratch).unwrap(), 1);
        }
        let fd = pidfd_open(me).unwrap();
        assert!(!has_exited(&fd));
    }
}
