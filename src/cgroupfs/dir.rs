//! An opened cgroup directory and its ancestors, for reads with openat(2).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::membership::relative_to_root;
use super::mounts::Hierarchy;
use crate::kfile;

/// A cgroup, held as directory fds: reading a file costs openat + read + close, with no
/// path walk from / and no allocation.
#[derive(Debug)]
pub struct CgroupDir {
    pub unified: bool,
    /// The cgroup's own directory first, then each parent up to the hierarchy's root.
    chain: Vec<OwnedFd>,
}

impl CgroupDir {
    /// Open the cgroup at host path `cg` (as /proc/<pid>/cgroup shows it) in `h`.
    pub fn open(h: &Hierarchy, cg: &str) -> io::Result<CgroupDir> {
        let rel = relative_to_root(cg, &h.root)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mount = CString::new(h.mountpoint.as_os_str().as_encoded_bytes())?;
        let mut chain = vec![kfile::open_dir(None, &mount)?];
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if part == ".." || part == "." {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let name = CString::new(part)?;
            let parent = chain.last().map(|f| f.as_fd());
            let next = kfile::open_dir(parent, &name)?;
            chain.push(next);
        }
        chain.reverse();
        Ok(CgroupDir {
            unified: h.unified,
            chain,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        // `open` always pushes the mount's directory, so the chain is never empty.
        self.chain[0].as_fd()
    }

    /// Read one of the cgroup's files into `buf`.
    pub fn read(&self, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        kfile::read_at(self.fd(), name, buf)
    }

    /// The smallest limit in `name` over this cgroup and every ancestor; None when all are
    /// unlimited. A level without the file (the v2 root has no memory.max) is skipped.
    pub fn min_limit(&self, name: &CStr, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        let mut min: Option<u64> = None;
        for (i, dir) in self.chain.iter().enumerate() {
            match kfile::read_limit(dir, name, buf) {
                Ok(Some(v)) => min = Some(min.map_or(v, |m| m.min(v))),
                Ok(None) => {}
                Err(e) if i > 0 && e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(min)
    }
}
