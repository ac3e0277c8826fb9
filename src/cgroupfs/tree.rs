//! The /cgroup tree (--enable-cgroup): every mounted hierarchy, as one caller may see it.
//!
//! A caller sees its own cgroup (that of its pid namespace's init, as in lxcfs) and what
//! lies below it; in an ancestor directory only the next path element toward its own
//! cgroup; everything else does not exist for it (ENOENT, never EACCES).
//!
//! Node ids are the kernel's own: a cgroup node's inode number is its kernfs id, which
//! open_by_handle_at turns back into the node (fhandle.rs). Every operation works on the fd
//! so resolved, and decides what the caller may see from the path that fd has now.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use super::fhandle;
use super::mounts::{Hierarchies, Hierarchy};

/// Node ids of the tree: bit 62 set (bit 63 is /sys's, static ids are small), then the
/// hierarchy id in 8 bits, then the kernfs id in 54 (its generation in the high 22).
const TAG: u64 = 1 << 62;
const HID_SHIFT: u32 = 54;
const HID_MAX: u32 = 0xff;
const KERNFS_MASK: u64 = (1 << HID_SHIFT) - 1;

/// The name the unified (v2) hierarchy has under /cgroup.
pub const UNIFIED_NAME: &str = "unified";

pub fn is_node(id: u64) -> bool {
    id >> 62 == 1
}

pub fn node_id(hid: u32, kernfs: u64) -> io::Result<u64> {
    if hid > HID_MAX || kernfs > KERNFS_MASK {
        return Err(io::Error::from_raw_os_error(libc::EOVERFLOW));
    }
    Ok(TAG | u64::from(hid) << HID_SHIFT | kernfs)
}

fn split_id(id: u64) -> (u32, u64) {
    (((id >> HID_SHIFT) as u32) & HID_MAX, id & KERNFS_MASK)
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// One hierarchy shown under /cgroup.
#[derive(Debug)]
pub struct TreeHierarchy {
    /// Its controllers as /proc/self/cgroup lists them, without `name=` (lxcfs's names:
    /// `cpu,cpuacct`, `systemd`); `unified` for cgroup v2.
    pub name: String,
    /// The hierarchy id: the first field of its line in /proc/<pid>/cgroup (0 for v2).
    pub hid: u32,
    pub mountpoint: PathBuf,
    /// The mount's root directory: what file handles are resolved against.
    mount: OwnedFd,
}

/// Every hierarchy the tree shows.
#[derive(Debug, Default)]
pub struct CgroupTree {
    pub hierarchies: Vec<TreeHierarchy>,
}

/// What a caller may see of a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sight<'a> {
    /// Its own cgroup or one below: everything, as the host has it.
    Full,
    /// An ancestor of its own cgroup: only this next path element, read-only.
    Toward(&'a str),
    Hidden,
}

/// What a caller whose cgroup is `own` may see of the directory `path` (both relative to
/// the hierarchy's root, "" for the root itself).
pub fn sight<'a>(own: &'a str, path: &str) -> Sight<'a> {
    let below =
        |a: &str, b: &str| b.is_empty() || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'));
    if path == own || below(path, own) {
        Sight::Full
    } else if below(own, path) {
        let rest = own[path.len()..].trim_start_matches('/');
        Sight::Toward(rest.split('/').next().unwrap_or(rest))
    } else {
        Sight::Hidden
    }
}

/// The files that list pids, translated between pid namespaces.
pub fn is_pid_file(name: &str) -> bool {
    matches!(name, "tasks" | "cgroup.procs" | "cgroup.threads")
}

/// A resolved node of the tree.
#[derive(Debug)]
pub struct Node<'a> {
    pub id: u64,
    pub hier: &'a TreeHierarchy,
    /// O_PATH fd of the real cgroup directory or file.
    pub fd: OwnedFd,
    /// Its path from the hierarchy's root, without a leading '/': "" for the root.
    pub rel: String,
    pub stat: FileStat,
}

impl Node<'_> {
    pub fn is_dir(&self) -> bool {
        SFlag::from_bits_truncate(self.stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
    }

    /// The last path element (a file's name).
    pub fn name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or(&self.rel)
    }

    /// What the caller whose cgroup is `own` may see of this node: a file only in a
    /// directory it fully sees.
    pub fn sight<'a>(&self, own: &'a str) -> Sight<'a> {
        if self.is_dir() {
            return sight(own, &self.rel);
        }
        let dir = self.rel.rsplit_once('/').map_or("", |(d, _)| d);
        match sight(own, dir) {
            Sight::Full => Sight::Full,
            _ => Sight::Hidden,
        }
    }
}

impl CgroupTree {
    /// The hierarchies mounted at their root in our mount namespace, named and numbered
    /// from `self_cgroup` (the text of /proc/self/cgroup).
    pub fn discover(hier: &Hierarchies, self_cgroup: &str) -> CgroupTree {
        let mut hierarchies = Vec::new();
        for h in hier.v1.iter().chain(&hier.unified) {
            if h.root != "/" {
                continue;
            }
            let Some((hid, name)) = identify(h, self_cgroup) else {
                continue;
            };
            let Ok(path) = CString::new(h.mountpoint.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // open_by_handle_at takes a real fd of the mount, not an O_PATH one.
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            match nix::fcntl::open(path.as_c_str(), flags, Mode::empty()) {
                Ok(mount) => hierarchies.push(TreeHierarchy {
                    name,
                    hid,
                    mountpoint: h.mountpoint.clone(),
                    mount,
                }),
                Err(e) => crate::warn!("cgroup tree: cannot open {}: {e}", h.mountpoint.display()),
            }
        }
        hierarchies.sort_by(|a, b| a.name.cmp(&b.name));
        hierarchies.dedup_by(|a, b| a.name == b.name);
        CgroupTree { hierarchies }
    }

    pub fn by_name(&self, name: &[u8]) -> Option<&TreeHierarchy> {
        self.hierarchies.iter().find(|h| h.name.as_bytes() == name)
    }

    /// The root directory of hierarchy `h`.
    pub fn root<'a>(&self, h: &'a TreeHierarchy) -> io::Result<Node<'a>> {
        let fd = crate::kfile::open_dir(Some(h.mount.as_fd()), c".")?;
        node_at(h, fd)
    }

    /// The node with id `id`; ENOENT once it is gone.
    pub fn resolve(&self, id: u64) -> io::Result<Node<'_>> {
        let (hid, kernfs) = split_id(id);
        let h = self
            .hierarchies
            .iter()
            .find(|h| h.hid == hid && is_node(id))
            .ok_or_else(enoent)?;
        let fd =
            fhandle::open_by_id(h.mount.as_fd(), kernfs).map_err(|e| match e.raw_os_error() {
                Some(libc::ESTALE) => enoent(),
                _ => e,
            })?;
        node_at(h, fd)
    }

    /// The entry `name` of directory `dir`.
    pub fn child<'a>(&self, dir: &Node<'a>, name: &[u8]) -> io::Result<Node<'a>> {
        if name == b"." || name == b".." || name.contains(&b'/') {
            return Err(enoent());
        }
        let name = CString::new(name).map_err(|_| enoent())?;
        let fd = openat(
            dir.fd.as_fd(),
            name.as_c_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        node_at(dir.hier, fd)
    }
}

/// The hierarchy id and the tree's name of `h`, from its line in /proc/self/cgroup.
fn identify(h: &Hierarchy, self_cgroup: &str) -> Option<(u32, String)> {
    let mut want: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
    want.sort_unstable();
    self_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, list) = (f.next()?.parse::<u32>().ok()?, f.next()?);
        if h.unified {
            return (id == 0 && list.is_empty()).then(|| (0, UNIFIED_NAME.to_owned()));
        }
        let mut have: Vec<&str> = list.split(',').collect();
        have.sort_unstable();
        let name: Vec<&str> = list
            .split(',')
            .map(|c| c.strip_prefix("name=").unwrap_or(c))
            .collect();
        (!list.is_empty() && have == want).then(|| (id, name.join(",")))
    })
}

/// The node behind an O_PATH fd in hierarchy `h`.
fn node_at(h: &TreeHierarchy, fd: OwnedFd) -> io::Result<Node<'_>> {
    let stat = fstat(&fd)?;
    let path = fhandle::path_of(fd.as_fd())?;
    let rel = path
        .strip_prefix(&h.mountpoint)
        .map_err(|_| enoent())?
        .to_str()
        .ok_or_else(enoent)?
        .to_owned();
    Ok(Node {
        id: node_id(h.hid, stat.st_ino)?,
        hier: h,
        fd,
        rel,
        stat,
    })
}

/// Copy the pid list `text` (one pid per line) into `out` with each pid translated by
/// `to_ns`; pids it maps to None (not visible to the reader) are left out.
pub fn translate_pids(text: &[u8], out: &mut Vec<u8>, mut to_ns: impl FnMut(u32) -> Option<u32>) {
    let mut b = itoa::Buffer::new();
    for line in crate::kfile::lines(text) {
        let pid = crate::kfile::parse_u64(line.trim_ascii()).and_then(|p| u32::try_from(p).ok());
        if let Some(p) = pid.and_then(&mut to_ns) {
            out.extend_from_slice(b.format(p).as_bytes());
            out.push(b'\n');
        }
    }
}

/// The one pid written to a pid file: decimal, surrounding white space allowed (as the
/// kernel parses it). EINVAL otherwise.
pub fn parse_written_pid(data: &[u8]) -> io::Result<u32> {
    crate::kfile::parse_u64(data.trim_ascii())
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p <= i32::MAX as u32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sight_follows_the_path_toward_the_own_cgroup() {
        assert_eq!(sight("lxc/c1", "lxc/c1"), Sight::Full);
        assert_eq!(sight("lxc/c1", "lxc/c1/sub/x"), Sight::Full);
        assert_eq!(sight("lxc/c1", ""), Sight::Toward("lxc"));
        assert_eq!(sight("lxc/c1", "lxc"), Sight::Toward("c1"));
        assert_eq!(sight("lxc/c1", "lxc/c2"), Sight::Hidden);
        // A sibling whose name extends ours is not below us.
        assert_eq!(sight("lxc/c1", "lxc/c10"), Sight::Hidden);
        assert_eq!(sight("lxc/c10", "lxc/c1"), Sight::Hidden);
        assert_eq!(sight("lxc/c1", "other"), Sight::Hidden);
        // A caller in the root sees everything.
        assert_eq!(sight("", ""), Sight::Full);
        assert_eq!(sight("", "a/b"), Sight::Full);
    }

    #[test]
    fn node_ids_round_trip_and_stay_apart_from_the_others() {
        let id = node_id(9, (3 << 32) | 0x14f90).unwrap();
        assert!(is_node(id));
        assert!(!crate::fs::sysfs::is_dynamic(id));
        assert_eq!(split_id(id), (9, (3 << 32) | 0x14f90));
        assert!(!is_node(1) && !is_node(1 << 63));
        assert!(node_id(256, 1).is_err());
        assert!(node_id(1, 1 << 54).is_err());
    }

    #[test]
    fn pid_lists_are_translated_and_filtered() {
        let mut out = Vec::new();
        translate_pids(b"100\n200\ngarbage\n300\n", &mut out, |p| {
            (p != 200).then_some(p / 100)
        });
        assert_eq!(out, b"1\n3\n");
        assert_eq!(parse_written_pid(b" 42\n").unwrap(), 42);
        assert_eq!(parse_written_pid(b"0").unwrap(), 0);
        for bad in [&b""[..], b"-1", b"1 2", b"x", b"4294967296", b"2147483648"] {
            assert!(parse_written_pid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hierarchies_are_named_as_lxcfs_names_them() {
        let mi = "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
            31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
            32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
            33 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let h = crate::cgroupfs::mounts::parse_mountinfo(mi);
        let own = "5:memory:/x\n3:cpuacct,cpu:/\n2:name=systemd:/\n0::/\n";
        let names: Vec<_> = h.v1.iter().map(|h| identify(h, own)).collect();
        assert_eq!(
            names,
            [
                Some((2, "systemd".to_owned())),
                Some((3, "cpuacct,cpu".to_owned())),
                None, // no line for it: not ours to show
            ]
        );
        let u = h.unified.as_ref().unwrap();
        assert_eq!(identify(u, own), Some((0, "unified".to_owned())));
        assert_eq!(identify(u, "1:cpu:/\n"), None);
    }
}
