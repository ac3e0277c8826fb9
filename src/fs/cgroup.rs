//! Requests on the /cgroup tree (--enable-cgroup): the real cgroup hierarchies, confined
//! to the caller's own cgroup (cgroupfs::tree), with pids in the caller's numbering.
//!
//! Mode, owner and capability checks are the kernel's own: the mount has
//! default_permissions and every attribute is the real node's. What the kernel cannot know,
//! because we act as root, is checked here: what the caller may see, and whom it may move.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirEntryExt, PermissionsExt};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::{DT_DIR, DT_REG, Fs, NO_TTL, Worker, emit_dirents, errno, tree};
use crate::cgroupfs::fhandle;
use crate::cgroupfs::membership;
use crate::cgroupfs::tree::{self as cgtree, CgroupTree, Node, Sight, TreeHierarchy};
use crate::container::creds::{self, Creds};
use crate::container::pidns::PidNs;
use crate::kfile::{self, ProcPath};
use crate::proto::{Attr, InHeader, Op, OutBuf, Request, SetattrIn, encode};
use crate::stats::{self, Counter};

fn err(e: io::Error) -> i32 {
    errno(&e)
}

fn overflow(_: crate::proto::Overflow) -> i32 {
    libc::EIO
}

fn attr(n: &Node<'_>, s: Sight<'_>) -> Attr {
    let mut mode = n.stat.st_mode;
    if let Sight::Toward(_) = s {
        // An ancestor is shown read-only, as lxcfs shows it.
        mode &= !0o222;
    }
    Attr {
        ino: n.id,
        size: n.stat.st_size as u64,
        mode,
        nlink: n.stat.st_nlink as u32,
        uid: n.stat.st_uid,
        gid: n.stat.st_gid,
        time: n.stat.st_mtime.max(0) as u64,
    }
}

impl Fs {
    /// Whether `id` is the /cgroup directory or below it, with the tree enabled.
    pub(super) fn in_cgroup_tree(&self, id: u64) -> bool {
        self.cgroups.is_some() && (id == tree::CGROUP_DIR || cgtree::is_node(id))
    }

    /// Answer a request on the /cgroup tree; None for the ones every node answers alike
    /// (FORGET, RELEASE, STATFS, ...).
    pub(super) fn cgroup_request(
        &self,
        w: &mut Worker,
        req: &Request<'_>,
        o: &mut OutBuf<'_>,
    ) -> Option<Result<(), i32>> {
        let t = self.cgroups.as_ref()?;
        let h = &req.header;
        let top = h.nodeid == tree::CGROUP_DIR;
        Some(match req.op {
            Op::Lookup { name } => self.cg_lookup(t, w, h, name, o),
            Op::Getattr { .. } if top => return None,
            Op::Getattr { .. } => self.cg_visible(t, w, h.pid, h.nodeid).and_then(|(n, own)| {
                let a = self.cg_attr(w, &n, n.sight(&own), h.pid);
                encode::attr_out(o, &a, NO_TTL).map_err(overflow)
            }),
            Op::Opendir { .. } if top => return None,
            Op::Opendir { .. } => self.cg_visible(t, w, h.pid, h.nodeid).and_then(|(n, _)| {
                if !n.is_dir() {
                    return Err(libc::ENOTDIR);
                }
                encode::open_out(o, 0, 0).map_err(overflow)
            }),
            Op::Readdir { offset, size, .. } => self.cg_entries(t, w, h).map(|entries| {
                emit_dirents(&entries, offset, size, o);
            }),
            Op::Open { .. } if top => Err(libc::EISDIR),
            Op::Open { flags } => self.cg_visible(t, w, h.pid, h.nodeid).and_then(|(n, _)| {
                if n.is_dir() {
                    return Err(libc::EISDIR);
                }
                let fh = self.open_file(w, h, flags)?;
                encode::open_out(o, fh, crate::proto::abi::FOPEN_DIRECT_IO).map_err(overflow)
            }),
            Op::Write { fh, data, .. } if !top => self.cg_write(t, w, h, data).and_then(|n| {
                // A read of this open file after the write must show what it did.
                self.handles.forget_snapshot(fh);
                encode::write_out(o, n).map_err(overflow)
            }),
            Op::Mkdir { name, mode } if !top => self.cg_mkdir(t, w, h, name, mode, o),
            Op::Rmdir { name } if !top => self.cg_rmdir(t, w, h, name),
            Op::Setattr(s) if !top => self.cg_setattr(t, w, h, &s, o),
            Op::Mkdir { .. } | Op::Rmdir { .. } | Op::Setattr(_) | Op::Write { .. } => {
                Err(libc::EPERM)
            }
            _ => return None,
        })
    }

    /// The text of /proc/<pid>/cgroup for the caller's container: its pid namespace's
    /// init's, or its own on the host.
    fn caller_cgroups(&self, w: &mut Worker, pid: u32) -> Result<String, i32> {
        let c = self
            .containers
            .resolve_for(&mut w.callers, pid, &mut w.scratch)
            .map_err(err)?;
        proc_cgroups(c.init, &mut w.scratch)
    }

    /// The cgroup path the caller is confined to in `hier` (see `path_in`).
    fn own_cgroup(&self, w: &mut Worker, pid: u32, hier: &TreeHierarchy) -> Result<String, i32> {
        path_in(&self.caller_cgroups(w, pid)?, hier)
    }

    /// The node `id` and the caller's own cgroup in its hierarchy (what it sees of the
    /// node is `node.sight(&own)`); ENOENT when it may not see the node at all.
    fn cg_visible<'t>(
        &self,
        t: &'t CgroupTree,
        w: &mut Worker,
        pid: u32,
        id: u64,
    ) -> Result<(Node<'t>, String), i32> {
        let n = t.resolve(id).map_err(err)?;
        let own = self.own_cgroup(w, pid, n.hier)?;
        match n.sight(&own) {
            Sight::Hidden => Err(libc::ENOENT),
            _ => Ok((n, own)),
        }
    }

    /// A directory the caller fully sees (its own cgroup or below), to change things in.
    fn cg_own_dir<'t>(
        &self,
        t: &'t CgroupTree,
        w: &mut Worker,
        h: &InHeader,
    ) -> Result<Node<'t>, i32> {
        let (n, own) = self.cg_visible(t, w, h.pid, h.nodeid)?;
        if !n.is_dir() {
            return Err(libc::ENOTDIR);
        }
        match n.sight(&own) {
            Sight::Full => Ok(n),
            // An ancestor of the caller's cgroup: shown read-only.
            _ => Err(libc::EACCES),
        }
    }

    fn cg_lookup(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
        name: &[u8],
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let (node, own) = if h.nodeid == tree::CGROUP_DIR {
            let hier = t.by_name(name).ok_or(libc::ENOENT)?;
            let own = self.own_cgroup(w, h.pid, hier)?;
            (t.root(hier).map_err(err)?, own)
        } else {
            let dir = t.resolve(h.nodeid).map_err(err)?;
            let own = self.own_cgroup(w, h.pid, dir.hier)?;
            match dir.sight(&own) {
                Sight::Full => {}
                Sight::Toward(next) if next.as_bytes() == name => {}
                _ => return Err(libc::ENOENT),
            }
            (t.child(&dir, name).map_err(err)?, own)
        };
        let s = node.sight(&own);
        if s == Sight::Hidden {
            return Err(libc::ENOENT);
        }
        // What a caller sees depends on who it is: the kernel must ask again every time.
        let a = self.cg_attr(w, &node, s, h.pid);
        encode::entry(o, &a, NO_TTL, NO_TTL).map_err(overflow)
    }

    /// The attributes of `n` for the caller `pid`: the cgroup file's, with a size that
    /// covers what the caller would read (see `Fs::reported_size`).
    fn cg_attr(&self, w: &mut Worker, n: &Node<'_>, s: Sight<'_>, pid: u32) -> Attr {
        let mut a = attr(n, s);
        if !n.is_dir() {
            a.size = self.reported_size(w, n.id, pid);
        }
        a
    }

    /// The entries of a directory of the tree as the caller sees them, with "." and "..".
    fn cg_entries(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
    ) -> Result<Vec<super::sysfs::DirEntry>, i32> {
        let id = h.nodeid;
        let mut v = vec![(b".".to_vec(), id, DT_DIR), (b"..".to_vec(), id, DT_DIR)];
        if id == tree::CGROUP_DIR {
            let text = self.caller_cgroups(w, h.pid)?;
            for hier in &t.hierarchies {
                // A hierarchy the caller has no cgroup in is not shown.
                if path_in(&text, hier).is_ok()
                    && let Ok(root) = t.root(hier)
                {
                    v.push((hier.name.clone().into_bytes(), root.id, DT_DIR));
                }
            }
            return Ok(v);
        }
        let (dir, own) = self.cg_visible(t, w, h.pid, id)?;
        if !dir.is_dir() {
            return Err(libc::ENOTDIR);
        }
        let only = match dir.sight(&own) {
            Sight::Toward(next) => Some(next.to_owned()),
            _ => None,
        };
        let listed = std::fs::read_dir(fhandle::fd_link(dir.fd.as_fd())).map_err(err)?;
        let mut entries = Vec::new();
        for e in listed.flatten() {
            let name = e.file_name().into_vec();
            if only.as_ref().is_some_and(|n| n.as_bytes() != name) {
                continue;
            }
            let dtype = match e.file_type() {
                Ok(t) if t.is_dir() => DT_DIR,
                _ => DT_REG,
            };
            let Ok(child) = cgtree::node_id(dir.hier.hid, e.ino()) else {
                continue;
            };
            entries.push((name, child, dtype));
        }
        entries.sort_unstable();
        v.extend(entries);
        Ok(v)
    }

    /// Read a file of the tree: pid lists in the caller's numbering, the rest as it is.
    pub(super) fn cg_render(
        &self,
        w: &mut Worker,
        id: u64,
        pid: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), i32> {
        let t = self.cgroups.as_ref().ok_or(libc::ENOENT)?;
        stats::add(Counter::RenderCgroup);
        let (n, _) = self.cg_visible(t, w, pid, id)?;
        if n.is_dir() {
            return Err(libc::EISDIR);
        }
        let fd = fhandle::reopen(n.fd.as_fd(), OFlag::O_RDONLY).map_err(err)?;
        if !cgtree::is_pid_file(n.name()) {
            return kfile::reread(fd.as_fd(), buf).map_err(err);
        }
        let mut raw = std::mem::take(&mut w.host);
        let r = kfile::reread(fd.as_fd(), &mut raw)
            .map_err(err)
            .and_then(|()| {
                let ns = PidNs::of(pid).map_err(err)?;
                buf.clear();
                cgtree::translate_pids(&raw, buf, |p| ns.ns_pid(p, &mut w.scratch));
                Ok(())
            });
        w.host = raw;
        r
    }

    /// Write `data` to a file of the tree; how many bytes were taken.
    fn cg_write(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
        data: &[u8],
    ) -> Result<u32, i32> {
        let (n, own) = self.cg_visible(t, w, h.pid, h.nodeid)?;
        if n.is_dir() {
            return Err(libc::EISDIR);
        }
        // Its text names file descriptors of the writer, which would be looked up in ours.
        if n.name() == "cgroup.event_control" {
            return Err(libc::EINVAL);
        }
        let fd = fhandle::reopen(n.fd.as_fd(), OFlag::O_WRONLY).map_err(err)?;
        if !cgtree::is_pid_file(n.name()) {
            let written = nix::unistd::write(&fd, data).map_err(|e| e as i32)?;
            return u32::try_from(written).map_err(|_| libc::EIO);
        }
        let target = movable_pid(w, h, n.hier, &own, data)?;
        let mut b = itoa::Buffer::new();
        nix::unistd::write(&fd, b.format(target).as_bytes()).map_err(|e| e as i32)?;
        u32::try_from(data.len()).map_err(|_| libc::EIO)
    }

    fn cg_mkdir(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
        name: &[u8],
        mode: u32,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let dir = self.cg_own_dir(t, w, h)?;
        let cname = std::ffi::CString::new(name).map_err(|_| libc::EINVAL)?;
        nix::sys::stat::mkdirat(
            dir.fd.as_fd(),
            cname.as_c_str(),
            Mode::from_bits_truncate(mode & 0o7777),
        )
        .map_err(|e| e as i32)?;
        let made = t.child(&dir, name).map_err(err)?;
        // The kernel makes a new cgroup and its files its creator's: so do we.
        if (h.uid, h.gid) != (0, 0) {
            chown_cgroup(&made, h.uid, h.gid).map_err(err)?;
        }
        let made = t.child(&dir, name).map_err(err)?;
        encode::entry(o, &attr(&made, Sight::Full), NO_TTL, NO_TTL).map_err(overflow)
    }

    fn cg_rmdir(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
        name: &[u8],
    ) -> Result<(), i32> {
        let dir = self.cg_own_dir(t, w, h)?;
        let gone = t.child(&dir, name).map_err(err)?;
        if !gone.is_dir() {
            return Err(libc::ENOTDIR);
        }
        let cname = std::ffi::CString::new(name).map_err(|_| libc::EINVAL)?;
        nix::unistd::unlinkat(dir.fd.as_fd(), cname.as_c_str(), UnlinkatFlags::RemoveDir)
            .map_err(|e| e as i32)
    }

    fn cg_setattr(
        &self,
        t: &CgroupTree,
        w: &mut Worker,
        h: &InHeader,
        s: &SetattrIn,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let (n, own) = self.cg_visible(t, w, h.pid, h.nodeid)?;
        if n.sight(&own) != Sight::Full {
            return Err(libc::EPERM);
        }
        if s.has(SetattrIn::SIZE) && n.is_dir() {
            return Err(libc::EISDIR);
        }
        // A size change is an O_TRUNC open of a control file: nothing to do.
        if s.has(SetattrIn::MODE) {
            let mode = std::fs::Permissions::from_mode(s.mode & 0o7777);
            std::fs::set_permissions(fhandle::fd_link(n.fd.as_fd()), mode).map_err(err)?;
        }
        if s.has(SetattrIn::UID) || s.has(SetattrIn::GID) {
            let uid = s.has(SetattrIn::UID).then(|| Uid::from_raw(s.uid));
            let gid = s.has(SetattrIn::GID).then(|| Gid::from_raw(s.gid));
            nix::unistd::fchownat(n.fd.as_fd(), c"", uid, gid, AtFlags::AT_EMPTY_PATH)
                .map_err(|e| e as i32)?;
        }
        let n = t.resolve(h.nodeid).map_err(err)?;
        encode::attr_out(o, &attr(&n, Sight::Full), NO_TTL).map_err(overflow)
    }
}

/// The host pid behind the pid the caller wrote, once the caller (whose own cgroup in
/// `hier` is `own`) may move it.
fn movable_pid(
    w: &mut Worker,
    h: &InHeader,
    hier: &TreeHierarchy,
    own: &str,
    data: &[u8],
) -> Result<u32, i32> {
    let written = cgtree::parse_written_pid(data).map_err(err)?;
    let target = if written == 0 {
        // "0" names the writer itself, as in the kernel.
        h.pid
    } else {
        PidNs::of(h.pid)
            .and_then(|ns| ns.host_pid(written, &mut w.scratch))
            .map_err(err)?
    };
    let mover = Creds::of(h.pid, &mut w.scratch).map_err(err)?;
    kfile::read_path(ProcPath::new(target, "status").as_cstr(), &mut w.scratch).map_err(err)?;
    let target_uids = creds::parse_uids(&w.scratch).ok_or(libc::ESRCH)?;
    if !mover.may_move(&target_uids) {
        return Err(libc::EACCES);
    }
    // Only from a cgroup the caller fully sees: never pull a process in from outside.
    let from = path_in(&proc_cgroups(target, &mut w.scratch)?, hier).map_err(|_| libc::EACCES)?;
    if cgtree::sight(own, &from) != Sight::Full {
        return Err(libc::EACCES);
    }
    Ok(target)
}

/// The text of /proc/<pid>/cgroup.
fn proc_cgroups(pid: u32, scratch: &mut Vec<u8>) -> Result<String, i32> {
    kfile::read_path(ProcPath::new(pid, "cgroup").as_cstr(), scratch).map_err(err)?;
    String::from_utf8(scratch.clone()).map_err(|_| libc::EIO)
}

/// The cgroup path in `hier` (from its root, no leading '/') of the text of a
/// /proc/<pid>/cgroup; ENOENT without a line for it (nothing of it is that process's).
fn path_in(text: &str, hier: &TreeHierarchy) -> Result<String, i32> {
    let path = membership::path_by_hid(text, hier.hid).ok_or(libc::ENOENT)?;
    Ok(path.trim_start_matches('/').to_owned())
}

/// Give a new cgroup directory and every file in it to `uid`:`gid`.
fn chown_cgroup(dir: &Node<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    nix::unistd::fchownat(dir.fd.as_fd(), c"", uid, gid, AtFlags::AT_EMPTY_PATH)?;
    for e in std::fs::read_dir(fhandle::fd_link(dir.fd.as_fd()))? {
        let name = e?.file_name();
        nix::unistd::fchownat(
            dir.fd.as_fd(),
            name.as_os_str(),
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}
