//! The pidfile, locked for as long as we run so a second instance refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, fcntl};

pub struct Pidfile {
    path: PathBuf,
    file: File,
}

impl Pidfile {
    /// Create (or take over a stale) pidfile, lock it with F_SETLK as lxcfs does, and write
    /// our pid. Fails with EWOULDBLOCK/EAGAIN/EACCES when another instance holds it.
    pub fn acquire(path: &Path) -> io::Result<Pidfile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(&file, FcntlArg::F_SETLK(&lock))?;
        let mut p = Pidfile {
            path: path.to_owned(),
            file,
        };
        p.file.set_len(0)?;
        writeln!(p.file, "{}", std::process::id())?;
        Ok(p)
    }

    /// The pidfile a predecessor program image held (and still holds the lock of: record
    /// locks survive execve while the fd stays open).
    pub fn adopt(path: &Path, fd: std::os::fd::OwnedFd) -> Pidfile {
        Pidfile {
            path: path.to_owned(),
            file: File::from(fd),
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }

    /// Whether `err` from `acquire` means another instance holds the lock.
    pub fn is_held_elsewhere(err: &io::Error) -> bool {
        matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES))
    }

    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
