//! Restart-free upgrades by re-exec (SIGUSR1): the process replaces its program image with
//! the binary now on disk and keeps the live /dev/fuse connection, so containers' bind
//! mounts never see it go.
//!
//! Lossless on the classic transport with a kernel that offers FUSE_NOTIFY_RESEND (6.9+):
//! replies are held back, every /dev/fuse file (the original and the workers' clones) stays
//! open across execve, and the new image asks the kernel to resend whatever was read but not
//! answered. Handles opened before the upgrade are served from the node the kernel names
//! (fs::Fs::read). The io_uring transport is refused: its uAPI (6.14-6.18) cannot hand a
//! request held in a ring entry to another ring.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::proto::abi::{self, init_flags};
use crate::proto::{InitOut, encode};
use crate::ring::Session;

/// The hidden command-line flag that carries the handed-over state to the new image.
pub const RESUME_FLAG: &str = "--resume";

/// What a new image takes over.
pub struct Resume {
    pub dev: OwnedFd,
    pub clones: Vec<OwnedFd>,
    pub pidfile: OwnedFd,
    pub init: InitOut,
    pub kernel_flags: u64,
}

/// Why an upgrade cannot happen now; None when it can.
pub fn refusal(s: &Session) -> Option<&'static str> {
    let init = s.init()?;
    if init.flags & init_flags::OVER_IO_URING != 0 {
        return Some(
            "the io_uring transport cannot hand in-flight requests over; run with --transport classic for live upgrades",
        );
    }
    if s.kernel_flags() & init_flags::HAS_RESEND == 0 {
        return Some(
            "this kernel has no FUSE_NOTIFY_RESEND (Linux 6.9+): requests in flight would be lost",
        );
    }
    None
}

/// Replace this process's image with `exe`, handing the connection over. Returns only if
/// the exec failed; the process then goes on serving.
pub fn exec(s: &Session, pidfile: RawFd, exe: &Path, argv: &[OsString]) -> io::Result<()> {
    let init = s
        .init()
        .copied()
        .ok_or_else(|| io::Error::other("INIT not done yet"))?;
    s.frozen.store(true, Ordering::Release);
    // A worker past its frozen check finishes its write within microseconds.
    std::thread::sleep(Duration::from_millis(20));
    let clones: Vec<RawFd> = s.clones.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let fds: Vec<RawFd> = [s.dev.as_raw_fd(), pidfile]
        .into_iter()
        .chain(clones.iter().copied())
        .collect();
    let result = (|| {
        for &fd in &fds {
            set_cloexec(fd, false)?;
        }
        let state = format!(
            "dev={},clones={},pidfile={},minor={},readahead={},flags={},background={},max_write={},max_pages={},kernel={}",
            s.dev.as_raw_fd(),
            clones
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(":"),
            pidfile,
            init.minor,
            init.max_readahead,
            init.flags,
            init.max_background,
            init.max_write,
            init.max_pages,
            s.kernel_flags()
        );
        let mut args: Vec<CString> = Vec::with_capacity(argv.len() + 2);
        let mut skip = false;
        for a in argv {
            if skip {
                skip = false;
                continue;
            }
            if a == RESUME_FLAG {
                skip = true;
                continue;
            }
            args.push(CString::new(a.clone().into_vec())?);
        }
        args.push(CString::new(RESUME_FLAG)?);
        args.push(CString::new(state)?);
        let path = CString::new(exe.as_os_str().as_encoded_bytes())?;
        nix::unistd::execv(&path, &args)?;
        Ok(())
    })();
    // Still here: the exec failed. Serve on, and have the held requests resent to us.
    for &fd in &fds {
        let _ = set_cloexec(fd, true);
    }
    s.frozen.store(false, Ordering::Release);
    resend(s.dev.as_fd())?;
    result
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: the fd is open for the whole call: it is owned by the session, a worker or
    // the pidfile, all alive while the process runs.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// FUSE_NOTIFY_RESEND: the kernel requeues every request read but not answered on any of
/// the connection's files, so this process's workers get them again.
pub fn resend(dev: BorrowedFd<'_>) -> io::Result<()> {
    let mut msg = [0u8; abi::OUT_HEADER_LEN];
    encode::out_header(&mut msg, abi::OUT_HEADER_LEN as u32, abi::NOTIFY_RESEND, 0)
        .map_err(|_| io::Error::other("notify header"))?;
    nix::unistd::write(dev, &msg)?;
    Ok(())
}

/// Parse the state a predecessor image passed, and take its file descriptors.
pub fn adopt(state: &str) -> Result<Resume, String> {
    let get = |key: &str| -> Result<&str, String> {
        state
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| format!("the resume state lacks {key}: start without --resume."))
    };
    let num = |key: &str| -> Result<u64, String> {
        get(key)?
            .parse()
            .map_err(|_| format!("the resume state has a bad {key}: start without --resume."))
    };
    let fd_of = |n: u64| -> Result<OwnedFd, String> {
        let raw = RawFd::try_from(n).map_err(|_| "a bad fd in the resume state".to_owned())?;
        // Only take fds that are open (a --resume typed by hand must not adopt garbage).
        // SAFETY: F_GETFD reads no memory; on a closed fd it fails with EBADF.
        if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
            return Err(format!(
                "fd {raw} of the resume state is not open: start without --resume."
            ));
        }
        // SAFETY: the predecessor image left this fd open across execve for us alone, and
        // we checked above that it is open; nothing else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(fd.as_raw_fd(), true).map_err(|e| e.to_string())?;
        Ok(fd)
    };
    let dev = fd_of(num("dev")?)?;
    is_fuse_device(&dev)?;
    let clones = get("clones")?
        .split(':')
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| "a bad clone fd in the resume state".to_owned())
                .and_then(fd_of)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for c in &clones {
        is_fuse_device(c)?;
    }
    let small = |key: &str| -> Result<u16, String> {
        u16::try_from(num(key)?).map_err(|_| format!("a bad {key}"))
    };
    let word = |key: &str| -> Result<u32, String> {
        u32::try_from(num(key)?).map_err(|_| format!("a bad {key}"))
    };
    Ok(Resume {
        pidfile: fd_of(num("pidfile")?)?,
        init: InitOut {
            minor: word("minor")?,
            max_readahead: word("readahead")?,
            flags: num("flags")?,
            max_background: small("background")?,
            max_write: word("max_write")?,
            max_pages: small("max_pages")?,
        },
        kernel_flags: num("kernel")?,
        dev,
        clones,
    })
}

/// /dev/fuse is character device 10:229.
fn is_fuse_device(fd: &OwnedFd) -> Result<(), String> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| e.to_string())?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if is_chr && libc::major(st.st_rdev) == 10 && libc::minor(st.st_rdev) == 229 {
        Ok(())
    } else {
        Err("an fd of the resume state is not /dev/fuse: start without --resume.".into())
    }
}
