//! Reads of kernel text files (procfs, cgroupfs) into reusable buffers.
//!
//! In steady state nothing here allocates: buffers keep their capacity between requests
//! and paths are formatted on the stack.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// A file larger than this is refused (EFBIG): a hostile or broken cgroup file must not
/// make the daemon allocate without bound.
pub const MAX_FILE: usize = 16 << 20;

/// Replace `buf`'s contents with the whole of `name` opened relative to `dir`.
pub fn read_at(dir: BorrowedFd<'_>, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    read_all(open_at(dir, name)?, buf)
}

/// Replace `buf`'s contents with the whole of the file at the absolute `path`.
pub fn read_path(path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    read_all(open_path(path)?, buf)
}

/// Replace `buf`'s contents with the whole of the file at `path` (not a hot path).
pub fn read_path_buf(path: &std::path::Path, buf: &mut Vec<u8>) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    read_path(&c, buf)
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
    let mut at = 0;
    loop {
        let n = pread_into(fd.as_fd(), buf, at)?;
        if n == 0 {
            return Ok(());
        }
        at += n;
    }
}

/// Replace `buf`'s contents with the file behind `fd`, read again from offset 0: a
/// kept-open procfs or cgroupfs file is generated afresh by a read at offset 0, which
/// saves the open and close of every later read.
///
/// Only for files the kernel produces as one record (cgroup files, /proc/meminfo,
/// /proc/stat, /proc/<pid>/stat): their first read returns all of it when the buffer is
/// large enough, so a read that leaves room is the whole file.
pub fn reread(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        buf.clear();
        let n = pread_into(fd, buf, 0)?;
        if n < buf.capacity() || n == 0 {
            return Ok(());
        }
        if buf.capacity() >= MAX_FILE {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        buf.reserve(buf.capacity() * 2);
    }
}

/// One pread(2) at `offset` into `buf`'s spare capacity (grown to at least 4 KiB), appended.
fn pread_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, offset: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        if buf.len() >= MAX_FILE {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        buf.reserve(buf.capacity().max(4096));
    }
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: pread(2) writes at most `spare.len()` bytes into the vector's unused
        // capacity, which is valid for writes; the fd is borrowed for the whole call.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: the kernel initialised the `n` bytes after the old length.
        unsafe { buf.set_len(buf.len() + n as usize) };
        return Ok(n as usize);
    }
}

/// A file kept open once first needed, or the knowledge that it does not exist: four
/// bytes, as every cached cgroup directory holds one per file a view may read (a
/// `OnceLock<Option<OwnedFd>>` takes eight). Set once, then fixed until dropped.
#[derive(Debug)]
pub struct FdSlot(AtomicI32);

const UNOPENED: RawFd = -1;
const MISSING: RawFd = -2;

impl Default for FdSlot {
    fn default() -> FdSlot {
        FdSlot(AtomicI32::new(UNOPENED))
    }
}

impl FdSlot {
    /// The kept fd, opening it with `open` on first use (Ok(None): it does not exist,
    /// which is remembered too). Concurrent first uses may both open; one fd is kept.
    pub fn get_or_open(
        &self,
        open: impl FnOnce() -> io::Result<Option<OwnedFd>>,
    ) -> io::Result<Option<BorrowedFd<'_>>> {
        let mut v = self.0.load(Ordering::Acquire);
        if v == UNOPENED {
            let new = open()?.map_or(MISSING, IntoRawFd::into_raw_fd);
            v = match self
                .0
                .compare_exchange(UNOPENED, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => new,
                Err(kept) => {
                    if new >= 0 {
                        // SAFETY: `new` came from into_raw_fd above and was never stored.
                        drop(unsafe { OwnedFd::from_raw_fd(new) });
                    }
                    kept
                }
            };
        }
        // SAFETY: a non-negative value is an fd this slot owns; it is closed only by Drop,
        // which cannot run while `self` is borrowed.
        Ok((v >= 0).then(|| unsafe { BorrowedFd::borrow_raw(v) }))
    }
}

impl Drop for FdSlot {
    fn drop(&mut self) {
        let v = *self.0.get_mut();
        if v >= 0 {
            // SAFETY: the slot owns `v` (see get_or_open) and nothing borrows it any more.
            drop(unsafe { OwnedFd::from_raw_fd(v) });
        }
    }
}

/// Open a file for repeated `reread`s.
pub fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open `name` (below `dir`, or an absolute path) read-write and non-blocking.
pub fn open_rw(dir: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    Ok(match dir {
        Some(dir) => openat(dir, name, flags, Mode::empty())?,
        None => nix::fcntl::open(name, flags, Mode::empty())?,
    })
}

/// Open an absolute path for repeated `reread`s.
pub fn open_path(path: &CStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
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

/// The lines of kernel text, each with its newline (the last may lack one); found with
/// memchr, which matters for files read on every request.
pub fn lines(text: &[u8]) -> Lines<'_> {
    Lines { rest: text }
}

pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.rest).map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
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

/// The white-space separated numbers of `line` (an NSpid or Uid line, a uid_map row),
/// each None where it is not a u32.
pub fn u32_words(line: &[u8]) -> impl Iterator<Item = Option<u32>> + '_ {
    line.split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| parse_u64(s).and_then(|v| u32::try_from(v).ok()))
}

/// A file holding one number, or "max" (returned as None).
pub fn parse_limit(text: &[u8]) -> io::Result<Option<u64>> {
    if text.trim_ascii() == b"max" {
        return Ok(None);
    }
    parse_u64(text)
        .map(Some)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_slot_opens_once_and_closes_on_drop() {
        // The slot keeps a pipe's write end: its read end tells whether that is still open
        // (EAGAIN) or closed (EOF), with no race against fds other tests open meanwhile.
        let (rd, wr) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).unwrap();
        let raw = wr.as_raw_fd();
        let slot = FdSlot::default();
        let first = slot
            .get_or_open(|| Ok(Some(wr)))
            .unwrap()
            .map(|fd| fd.as_raw_fd());
        let again = slot
            .get_or_open(|| panic!("opened twice"))
            .unwrap()
            .map(|fd| fd.as_raw_fd());
        assert_eq!((first, again), (Some(raw), Some(raw)));
        let mut b = [0u8; 1];
        assert_eq!(
            nix::unistd::read(&rd, &mut b),
            Err(nix::errno::Errno::EAGAIN)
        );
        drop(slot);
        assert_eq!(nix::unistd::read(&rd, &mut b), Ok(0));
    }

    #[test]
    fn fd_slot_remembers_a_missing_file_and_retries_after_an_error() {
        let missing = FdSlot::default();
        assert!(missing.get_or_open(|| Ok(None)).unwrap().is_none());
        assert!(
            missing
                .get_or_open(|| panic!("looked up again"))
                .unwrap()
                .is_none()
        );
        let failing = FdSlot::default();
        assert!(
            failing
                .get_or_open(|| Err(io::Error::from_raw_os_error(libc::EMFILE)))
                .is_err()
        );
        assert!(failing.get_or_open(|| Ok(None)).unwrap().is_none());
    }

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
    fn line_splitting() {
        let v: Vec<&[u8]> = lines(b"a\nbc\n\nd").collect();
        assert_eq!(v, vec![&b"a\n"[..], b"bc\n", b"\n", b"d"]);
        assert_eq!(lines(b"").count(), 0);
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

    #[test]
    fn rereads_a_kept_open_file() {
        let fd = open_path(c"/proc/self/stat").unwrap();
        let mut buf = Vec::new();
        reread(fd.as_fd(), &mut buf).unwrap();
        let first = buf.clone();
        reread(fd.as_fd(), &mut buf).unwrap();
        assert_eq!(
            first.split(|&c| c == b' ').next(),
            buf.split(|&c| c == b' ').next()
        );
        // a buffer smaller than the file is grown, and the file comes back whole
        let fd = open_path(c"/proc/meminfo").unwrap();
        let mut small = Vec::with_capacity(16);
        reread(fd.as_fd(), &mut small).unwrap();
        assert!(small.starts_with(b"MemTotal:") && small.ends_with(b" kB\n"));
        assert!(small.windows(9).any(|w| w == b"SwapFree:"));
        assert_eq!(parse_limit(b"max\n").unwrap(), None);
        assert_eq!(parse_limit(b"42\n").unwrap(), Some(42));
        assert!(parse_limit(b"x").is_err());
    }
}
