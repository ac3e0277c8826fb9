//! /dev/fuse and mount(2): the connection to the kernel, without libfuse.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

/// Filesystem type and source as /proc/mounts shows them: tools that look for an lxcfs
/// mount (LXC's hooks, Kubernetes admission webhooks) find ours.
pub const FSTYPE: &str = "fuse.lxcfs";
pub const SOURCE: &str = "lxcfs";

/// `_IOR(229, 0, uint32_t)`
const FUSE_DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;

pub fn open_dev() -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        "/dev/fuse",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Mount the connection `dev` on `target`. With default_permissions the kernel enforces
/// the modes we report (slabinfo 0400 stays root's), as it does for the host's files.
pub fn mount(dev: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let data = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        dev.as_raw_fd()
    );
    let data = CString::new(data)?;
    nix::mount::mount(
        Some(SOURCE),
        target,
        Some(FSTYPE),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_c_str()),
    )?;
    Ok(())
}

/// Detach the mount: the way libfuse unmounts as root, so it succeeds while containers
/// still hold bind mounts of it.
pub fn unmount(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH)?;
    Ok(())
}

/// A new /dev/fuse file attached to the same connection, with its own queue of
/// requests in progress (so workers never answer through another's file).
pub fn clone_dev(dev: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let new = open_dev()?;
    let src: u32 = dev.as_raw_fd() as u32;
    // SAFETY: FUSE_DEV_IOC_CLONE reads one u32 (the source fd) from the pointer we pass,
    // which points at a live local.
    let r = unsafe { libc::ioctl(new.as_raw_fd(), FUSE_DEV_IOC_CLONE as _, &src as *const u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(new)
}
