//! Kernel file handles of cgroup nodes. A cgroup directory's or file's inode number is its
//! kernfs id, and open_by_handle_at(2) turns that id back into the node: the /cgroup tree's
//! FUSE node ids are those ids, so no table maps them and a successor process (takeover,
//! crash) resolves them exactly as we do.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// FILEID_KERNFS from linux/exportfs.h: the handle is the node's 64-bit kernfs id.
const FILEID_KERNFS: i32 = 0xfe;

/// struct file_handle with the 8 bytes a kernfs handle carries.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

/// An O_PATH fd of the node with kernfs id `id` in the hierarchy mounted at `mount`.
/// ESTALE when the node is gone (a removed cgroup).
pub fn open_by_id(mount: BorrowedFd<'_>, id: u64) -> io::Result<OwnedFd> {
    let mut h = KernfsHandle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id,
    };
    // SAFETY: `h` is a valid struct file_handle whose handle_bytes matches the bytes that
    // follow it; the kernel only reads it. `mount` is an open fd for the whole call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            &mut h as *mut KernfsHandle,
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The /proc/self/fd link of an fd: opening, listing or chmod-ing it reaches the very
/// file the fd holds, whatever its path is now.
pub fn fd_link(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Where an fd's file is, as our mount namespace names it.
pub fn path_of(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(fd_link(fd))
}

/// Open the file behind an O_PATH fd again, for reading or writing.
pub fn reopen(fd: BorrowedFd<'_>, flags: nix::fcntl::OFlag) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        &fd_link(fd),
        flags | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?)
}
