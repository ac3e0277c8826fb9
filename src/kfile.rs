//! Reads of kernel text files (procfs, cgroupfs) into reusable buffers.
//!
//! In steady state nothing here allocates: buffers keep their capacity between requests
//! and paths are formatted on the stack.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// A file larger than this is refused (EFBIG): a hostile or broken cgroup file must not
/// make the daemon allocate without bound.
pub const MAX_FILE: usize = 16 << 20;

/// Replace `buf`'s contents with the whole of `name` opened relative to `dir`.
pub fn read_at(dir: BorrowedFd<'_>, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    read_all(fd, buf)
}

/// Replace `buf`'s contents with the whole of the file at the absolute `path`.
pub fn read_path(path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    read_all(fd, buf)
}

/// Open a directory for use as an `openat` base.
pub fn open_dir(dir: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(match dir {
        Some(d) => openat(d, name, flags, Mode::empty())?,
        None => nix::fcntl::open(name, flags, Mode::empty())?,
    })
}

fn read_all(fd: OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_FILE {
                return Err(io::Error::from_raw_os_error(libc::EFBIG));
            }
            buf.reserve(buf.capacity().max(4096));
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: read(2) writes at most `spare.len()` bytes into the vector's unused
        // capacity, which is valid for writes; the fd is open for the whole call.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised the `n` bytes after the old length.
        unsafe { buf.set_len(buf.len() + n as usize) };
    }
}

/// `/proc/<pid>/<tail>` formatted on the stack.
pub struct ProcPath {
    buf: [u8; 64],
}

impl ProcPath {
    /// `tail` must be a short relative path without NUL (all callers pass literals).
    pub fn new(pid: u32, tail: &str) -> ProcPath {
        let mut p = ProcPath { buf: [0; 64] };
        let mut n = itoa::Buffer::new();
        let parts: [&[u8]; 4] = [b"/proc/", n.format(pid).as_bytes(), b"/", tail.as_bytes()];
        let mut at = 0;
        for part in parts {
            let take = part.len().min(63 - at);
            p.buf[at..at + take].copy_from_slice(&part[..take]);
            at += take;
        }
        p
    }

    pub fn as_cstr(&self) -> &CStr {
        // The buffer always holds a NUL: at most 63 bytes are written.
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"/proc")
    }
}

/// Parse a decimal u64 from kernel text, ignoring surrounding whitespace.
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    let t = b.trim_ascii();
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in t {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Read a directory fd's file holding one number (or "max", returned as None).
pub fn read_limit(dir: impl AsFd, name: &CStr, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
    read_at(dir.as_fd(), name, buf)?;
    if buf.trim_ascii() == b"max" {
        return Ok(None);
    }
    parse_u64(buf)
        .map(Some)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths() {
        assert_eq!(ProcPath::new(42, "cgroup").as_cstr(), c"/proc/42/cgroup");
        assert_eq!(
            ProcPath::new(u32::MAX, "ns/pid").as_cstr(),
            c"/proc/4294967295/ns/pid"
        );
        let long = "x".repeat(200);
        assert_eq!(ProcPath::new(1, &long).as_cstr().to_bytes().len(), 63);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"123\n"), Some(123));
        assert_eq!(parse_u64(b" 0 "), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"max"), None);
    }

    #[test]
    fn reads_whole_files_and_reuses_the_buffer() {
        let mut buf = Vec::new();
        read_path(c"/proc/self/status", &mut buf).unwrap();
        assert!(buf.starts_with(b"Name:"));
        let cap = buf.capacity();
        read_path(c"/proc/self/stat", &mut buf).unwrap();
        assert_eq!(buf.capacity(), cap);
        assert!(read_path(c"/nonexistent", &mut buf).is_err());
    }
}
