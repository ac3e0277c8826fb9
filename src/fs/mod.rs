//! The filesystem: requests in, replies out, over the static tree.

pub mod backing;
pub mod cgroup;
pub mod handles;
pub mod psi;
pub mod sysfs;
pub mod tree;
pub mod views;

use std::io;

use crate::container::Containers;
use crate::kfile;
use crate::proto::abi;
use crate::proto::{Attr, InHeader, Op, OutBuf, Overflow, Request, SetattrIn, Validity, encode};
use crate::stats::{self, Counter};
use handles::Handles;
use sysfs::{NodeFile, SysDir};
use tree::{Kind, Node};
pub use views::ViewOptions;

/// How long the kernel may cache our (static) entries and the attributes of directories
/// and /sys files: nothing in the tree ever changes.
const STATIC_TTL: Validity = Validity {
    secs: 3600,
    nsecs: 0,
};

/// How long the kernel may keep a /proc view's attributes (their size: `reported_size`).
/// It keeps one size per inode, shared by every container; it also asks for attributes
/// again at an open's permission check once they expire, so zero would cost every open
/// a round trip.
const VIEW_ATTR_TTL: Validity = Validity { secs: 1, nsecs: 0 };

/// Entries below /sys/devices/system/cpu differ by caller: looked up afresh every time.
const NO_TTL: Validity = Validity { secs: 0, nsecs: 0 };
/// Their attributes are the host's, the same for every caller.
const SYS_ATTR_TTL: Validity = Validity { secs: 1, nsecs: 0 };

/// A read at offset 0 renders the file again (a reader that keeps it open and reads it
/// again from the start, as procps does, sees it change), unless the snapshot is younger
/// than this (the read that follows an open) ...
const SNAPSHOT_REUSE: std::time::Duration = views::INPUT_TTL;
/// ... or a piece of it past offset 0 was read less than this ago: the kernel sends the
/// 32 KiB pieces of one large io_uring or AIO read at once, and on the classic transport
/// they may be answered in any order; the piece at 0 must come from the same snapshot.
/// (A piece past 0 answered while the piece at 0 is rendering anew is not covered: a
/// file over 32 KiB, kept open and read again with one large asynchronous read.)
const PIECES_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

const DT_DIR: u32 = libc::DT_DIR as u32;
const DT_REG: u32 = libc::DT_REG as u32;

/// The answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Success with this many payload bytes written into the output buffer.
    Data(usize),
    /// Failure with this errno.
    Error(i32),
    /// The opcode takes no reply (FORGET).
    None,
}

/// Per-worker scratch: the buffers a request needs, reused across requests.
pub struct Worker {
    pub id: usize,
    pub scratch: Vec<u8>,
    /// The host file a view is based on (e.g. /proc/meminfo).
    pub host: Vec<u8>,
    /// A render served without a snapshot (a handle we did not open).
    pub scratch_file: Vec<u8>,
    pub files: views::HostFiles,
    pub cpu: views::CpuBuffers,
    pub callers: crate::container::Callers,
    pub clk_tck: u64,
}

impl Worker {
    pub fn new(id: usize) -> Worker {
        let clk_tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&t| t > 0)
            .unwrap_or(100) as u64;
        crate::stats::set_worker(id);
        Worker {
            id,
            scratch: Vec::with_capacity(8192),
            host: Vec::with_capacity(8192),
            scratch_file: Vec::new(),
            files: views::HostFiles::open(),
            cpu: Default::default(),
            callers: Default::default(),
            clk_tck,
        }
    }
}

pub struct Fs {
    pub opts: ViewOptions,
    pub containers: Containers,
    pub handles: Handles,
    /// Backing files of the passthrough fast path.
    pub backings: backing::Backings,
    /// Per-container load averages, with -l.
    pub loadavg: Option<std::sync::Arc<crate::loadavg::LoadTracker>>,
    /// Show the host's files unchanged (toggled by SIGUSR2, as in lxcfs).
    pub passthrough: std::sync::atomic::AtomicBool,
    /// The /cgroup tree, with --enable-cgroup.
    pub cgroups: Option<crate::cgroupfs::tree::CgroupTree>,
    /// PSI triggers through /proc/pressure, with --enable-psi-poll.
    pub psi: Option<psi::Triggers>,
    /// Seconds since the epoch at mount: the tree's timestamps.
    mount_time: u64,
    /// The longest render of each static file so far, by node id - 1 (`reported_size`).
    longest: [std::sync::atomic::AtomicU64; tree::NODES.len()],
    /// Whether the host has what each static node shows, by node id - 1: looked at once,
    /// at start, since a kernel's files do not come and go (`on_host`).
    host_has: [bool; tree::NODES.len()],
}

impl Fs {
    pub fn new(opts: ViewOptions, containers: Containers) -> Fs {
        let loadavg = opts.loadavg.then(Default::default);
        let mount_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Fs {
            opts,
            containers,
            handles: Handles::default(),
            backings: backing::Backings::new(false),
            loadavg,
            passthrough: Default::default(),
            cgroups: None,
            psi: None,
            mount_time,
            longest: std::array::from_fn(|i| {
                // The host's file: an upper bound of most containers' renders from the start.
                let mut buf = Vec::new();
                let host = match tree::NODES[i].kind {
                    Kind::File(f) => {
                        kfile::read_path(f.host_path(), &mut buf).map_or(0, |()| buf.len())
                    }
                    Kind::Dir => 0,
                };
                std::sync::atomic::AtomicU64::new(host as u64)
            }),
            host_has: std::array::from_fn(|i| on_host(&tree::NODES[i])),
        }
    }

    /// The attributes of static node `n` as the caller `pid` sees them, and how long the
    /// kernel may keep them.
    fn attr(&self, w: &mut Worker, n: &Node, pid: u32) -> (Attr, Validity) {
        let (mode, size, ttl) = match n.kind {
            Kind::Dir => (libc::S_IFDIR | n.perm, 0, STATIC_TTL),
            // sysfs reports 4096 for every file, as the host's do.
            Kind::File(_) if tree::in_sys(n) => (libc::S_IFREG | n.perm, 4096, STATIC_TTL),
            // procfs reports 0, but the kernel stops splice, io_uring and AIO reads at
            // the size: report one that covers every container's file.
            Kind::File(_) => (
                libc::S_IFREG | self.perm(n),
                self.reported_size(w, n.id, pid),
                VIEW_ATTR_TTL,
            ),
        };
        let attr = Attr {
            ino: n.id,
            size,
            mode,
            nlink: tree::nlink(n),
            uid: 0,
            gid: 0,
            time: self.mount_time,
        };
        (attr, ttl)
    }

    /// The size to report for file `node` to the caller `pid`: a multiple of 4096 at
    /// least as large as any render of it so far, this caller's included. The kernel
    /// keeps one size per file, for every container, and uses it: a splice or sendfile
    /// ends there before asking (size 0: an empty file for busybox cat), io_uring and AIO
    /// reads stop there, and programs that read st_size bytes (Node's readFile) would cut
    /// a longer file of another container short. coreutils and busybox read a file whose
    /// size is a page multiple to its end, as they do sysfs's.
    fn reported_size(&self, w: &mut Worker, node: u64, pid: u32) -> u64 {
        let mut buf = std::mem::take(&mut w.scratch_file);
        buf.clear();
        let own = match self.render_node(w, node, pid, &mut buf) {
            Ok(()) => buf.len() as u64,
            Err(_) => 0,
        };
        w.scratch_file = buf;
        let longest = self
            .longest(node)
            .map_or(own, |l| l.load(std::sync::atomic::Ordering::Relaxed));
        own.max(longest).max(1).next_multiple_of(4096)
    }

    /// Where the longest render of static file `node` so far is kept.
    fn longest(&self, node: u64) -> Option<&std::sync::atomic::AtomicU64> {
        self.longest
            .get(usize::try_from(node.checked_sub(1)?).ok()?)
    }

    /// Answer one request (all but INIT, which the session negotiates), writing the
    /// reply's payload into `out`.
    pub fn handle(&self, w: &mut Worker, req: &Request<'_>, out: &mut [u8]) -> Reply {
        let mut o = OutBuf::new(out);
        let r = self.dispatch(w, req, &mut o);
        match r {
            Ok(Some(())) => Reply::Data(o.len()),
            Ok(None) => Reply::None,
            Err(e) => Reply::Error(e),
        }
    }

    fn dispatch(
        &self,
        w: &mut Worker,
        req: &Request<'_>,
        o: &mut OutBuf<'_>,
    ) -> Result<Option<()>, i32> {
        let h = &req.header;
        let overflow = |_: Overflow| libc::EIO;
        let dynamic = sysfs::is_dynamic(h.nodeid);
        // The cpu or node directory (or an entry below one) the request is about.
        let sys_dir = match SysDir::top(h.nodeid) {
            None if dynamic => Some(SysDir::of(h.nodeid)),
            top => top,
        };
        if self.in_cgroup_tree(h.nodeid)
            && let Some(r) = self.cgroup_request(w, req, o)
        {
            return r.map(Some);
        }
        match req.op {
            Op::Lookup { name } => {
                if let Some(n) = tree::lookup(h.nodeid, name).filter(|n| self.shown(n)) {
                    let (attr, attr_ttl) = self.attr(w, n, h.pid);
                    encode::entry(o, &attr, STATIC_TTL, attr_ttl).map_err(overflow)?;
                } else if let Some(dir) = sys_dir {
                    let e = self.sys(w, h.pid, dir, |shown| match h.nodeid {
                        tree::CPU_DIR | tree::NODE_DIR => sysfs::lookup_top(dir, name, shown),
                        parent => sysfs::lookup(parent, name, shown),
                    })?;
                    // Which cpuN and nodeN exist depends on the caller: never cache the entry.
                    encode::entry(o, &self.sys_attr(&e), NO_TTL, SYS_ATTR_TTL).map_err(overflow)?;
                } else {
                    return Err(libc::ENOENT);
                }
            }
            Op::Forget { .. } | Op::BatchForget { .. } => return Ok(None),
            Op::Getattr { .. } if dynamic => {
                let e = self.sys_entry(w, h.pid, h.nodeid)?;
                encode::attr_out(o, &self.sys_attr(&e), SYS_ATTR_TTL).map_err(overflow)?;
            }
            Op::Getattr { .. } => {
                let (attr, ttl) = self.attr(w, self.static_node(h.nodeid)?, h.pid);
                encode::attr_out(o, &attr, ttl).map_err(overflow)?;
            }
            Op::Open { flags } => {
                let writes = flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32;
                if dynamic {
                    let e = self.sys_entry(w, h.pid, h.nodeid)?;
                    if e.meta.is_dir() {
                        return Err(libc::EISDIR);
                    }
                    if writes {
                        return Err(libc::EACCES);
                    }
                } else {
                    let n = self.static_node(h.nodeid)?;
                    if n.kind == Kind::Dir {
                        return Err(libc::EISDIR);
                    }
                    if writes && tree::in_sys(n) {
                        return Err(libc::EACCES);
                    }
                }
                self.open_reply(w, h, flags, o)?;
            }
            Op::Opendir { .. } => {
                let is_dir = if dynamic {
                    self.sys_entry(w, h.pid, h.nodeid)?.meta.is_dir()
                } else {
                    self.static_node(h.nodeid)?.kind == Kind::Dir
                };
                if !is_dir {
                    return Err(libc::ENOTDIR);
                }
                encode::open_out(o, 0, 0).map_err(overflow)?;
            }
            // Without a lock owner the kernel is filling the inode's page cache, which
            // every container shares (splice, sendfile, a private mmap of a direct-I/O
            // file). Nothing goes there: the caller gets EINVAL, on which every
            // splice and sendfile user falls back to read(2), served per open.
            Op::Read { .. } if req.op.is_page_cache_read() => {
                stats::add(Counter::PageCacheReads);
                return Err(libc::EINVAL);
            }
            Op::Read {
                fh, offset, size, ..
            } => self.read(w, h, fh, offset, size, o)?,
            Op::Readdir { offset, size, .. } => {
                let entries = self.dir_entries(w, h.pid, h.nodeid)?;
                emit_dirents(&entries, offset, size, o);
            }
            Op::Readlink if dynamic => {
                let e = self.sys_entry(w, h.pid, h.nodeid)?;
                let target = std::fs::read_link(&e.host).map_err(|e| errno(&e))?;
                o.bytes(target.as_os_str().as_encoded_bytes())
                    .map_err(overflow)?;
            }
            Op::Readlink => return Err(libc::EINVAL),
            Op::Release { fh } => {
                // Only a pressure file can hold a trigger: other RELEASEs leave its lock be.
                if let Some(psi) = &self.psi
                    && is_pressure(h.nodeid)
                {
                    psi.release(fh);
                }
                self.release(h, fh);
            }
            Op::Releasedir { .. } => {}
            Op::Statfs => encode::statfs(o, 255).map_err(overflow)?,
            Op::Write { fh, data, .. } => {
                let written = self.write(w, h, fh, data)?;
                encode::write_out(o, written).map_err(overflow)?;
            }
            Op::Poll { fh, kh, flags, .. } => {
                let revents = self.poll(h.nodeid, fh, kh, flags)?;
                encode::poll_out(o, revents).map_err(overflow)?;
            }
            // procfs: truncating is a no-op, so a shell's `>` fails at the write, with EIO;
            // mode and owner stay the host's.
            Op::Setattr(s)
                if !dynamic
                    && s.valid & (SetattrIn::MODE | SetattrIn::UID | SetattrIn::GID) == 0
                    && !tree::in_sys(self.static_node(h.nodeid)?) =>
            {
                let (attr, ttl) = self.attr(w, self.static_node(h.nodeid)?, h.pid);
                encode::attr_out(o, &attr, ttl).map_err(overflow)?;
            }
            Op::Setattr(_) | Op::Remove | Op::Rmdir { .. } => return Err(libc::EPERM),
            Op::Mkdir { .. } => return Err(libc::EACCES),
            Op::Create { .. } => return Err(libc::EACCES),
            Op::Destroy => {}
            // ENOSYS is remembered by the kernel: no more FLUSH, ACCESS (then allowed),
            // INTERRUPT (our replies are quick), xattrs (then EOPNOTSUPP), fsync...
            Op::Flush { .. } | Op::Access { .. } | Op::Interrupt { .. } | Op::Unsupported => {
                return Err(libc::ENOSYS);
            }
            Op::Init(_) => return Err(libc::EPROTO),
        }
        Ok(Some(()))
    }

    /// Run `f` with the CPUs (and below the node directory the memory nodes) the caller
    /// `pid` is shown.
    fn sys<R>(
        &self,
        w: &mut Worker,
        pid: u32,
        dir: SysDir,
        f: impl FnOnce(&sysfs::Shown<'_>) -> io::Result<R>,
    ) -> Result<R, i32> {
        let v = views::cpus_of(self, w, pid, dir == SysDir::Node).map_err(|e| errno(&e))?;
        f(&sysfs::Shown {
            base: std::path::Path::new(sysfs::HOST_BASE),
            cpus: v.shown(&w.cpu),
            renumber: v.renumber,
            nodes: &w.cpu.nodes,
        })
        .map_err(|e| errno(&e))
    }

    /// The dynamic node `id` as the caller `pid` sees it.
    fn sys_entry(&self, w: &mut Worker, pid: u32, id: u64) -> Result<sysfs::Entry, i32> {
        self.sys(w, pid, SysDir::of(id), |shown| sysfs::entry(id, shown))
    }

    /// Attributes of a passed-through sysfs node: the host's, owned by root.
    fn sys_attr(&self, e: &sysfs::Entry) -> Attr {
        use std::os::unix::fs::MetadataExt;
        Attr {
            ino: e.id,
            size: e.meta.size(),
            mode: e.meta.mode(),
            nlink: e.meta.nlink() as u32,
            uid: 0,
            gid: 0,
            time: self.mount_time,
        }
    }

    /// The entries of directory `id`, with "." and "..", as this caller sees them.
    fn dir_entries(&self, w: &mut Worker, pid: u32, id: u64) -> Result<Vec<sysfs::DirEntry>, i32> {
        let dot = |name: &[u8], id: u64| (name.to_vec(), id, libc::DT_DIR as u32);
        if sysfs::is_dynamic(id) {
            let mut v = vec![dot(b".", id), dot(b"..", id)];
            v.extend(self.sys(w, pid, SysDir::of(id), |shown| sysfs::readdir(id, shown))?);
            return Ok(v);
        }
        let dir = self.static_node(id)?;
        if dir.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        let mut v = vec![dot(b".", id), dot(b"..", dir.parent)];
        v.extend(tree::children(id).filter(|n| self.shown(n)).map(|n| {
            let dtype = if n.kind == Kind::Dir { DT_DIR } else { DT_REG };
            (n.name.to_vec(), n.id, dtype)
        }));
        if let Some(dir) = SysDir::top(id) {
            v.extend(self.sys(w, pid, dir, |shown| sysfs::readdir_top(dir, shown))?);
        }
        Ok(v)
    }
}

impl Fs {
    /// Open the node the request names (with open(2)'s `flags`), with the snapshot its
    /// reads will show. A render that fails leaves none: the first read renders again
    /// and answers the error.
    pub(super) fn open_file(&self, w: &mut Worker, h: &InHeader, flags: u32) -> Result<u64, i32> {
        let fh = self.handles.open(h.nodeid, w.id).ok_or(libc::ENFILE)?;
        if flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32 {
            self.render_into(w, fh, h.nodeid, h.pid).ok();
        }
        Ok(fh)
    }

    /// Render `node` for `pid` as the snapshot of `fh`.
    fn render_into(&self, w: &mut Worker, fh: u64, node: u64, pid: u32) -> Result<(), i32> {
        let mut buf = self.handles.buffer(fh);
        match self.render_node(w, node, pid, &mut buf) {
            Ok(()) => {
                self.handles.store(fh, buf);
                Ok(())
            }
            Err(e) => {
                self.handles.recycle(fh, buf);
                Err(e)
            }
        }
    }

    fn read(
        &self,
        w: &mut Worker,
        h: &InHeader,
        fh: u64,
        offset: u64,
        size: u32,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let pid = h.pid;
        let Some((node, current)) = self.handles.with(fh, |f| {
            let len = f.snapshot.as_ref().map_or(0, |s| s.len() as u64);
            if offset != 0 && offset < len {
                f.mid_read_at = Some(std::time::Instant::now());
            }
            let stale = f.rendered_at.elapsed() >= SNAPSHOT_REUSE
                && f.mid_read_at.is_none_or(|t| t.elapsed() >= PIECES_WINDOW);
            (f.node, f.snapshot.is_some() && (offset != 0 || !stale))
        }) else {
            // A handle this process never opened: one a predecessor opened before a
            // takeover or a crash. Serve the node the kernel names from a fresh render.
            let mut buf = std::mem::take(&mut w.scratch_file);
            buf.clear();
            let r = self.render_node(w, h.nodeid, pid, &mut buf);
            let copied = r.and_then(|()| copy_range(&buf, offset, size, o));
            w.scratch_file = buf;
            return copied;
        };
        if !current {
            self.render_into(w, fh, node, pid)?;
        }
        self.handles
            .with(fh, |f| {
                copy_range(f.snapshot.as_deref().unwrap_or_default(), offset, size, o)
            })
            .ok_or(libc::EBADF)?
    }

    /// The bytes of node `node` as the process `pid` sees them.
    fn render_node(
        &self,
        w: &mut Worker,
        node: u64,
        pid: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), i32> {
        if crate::cgroupfs::tree::is_node(node) {
            return self.cg_render(w, node, pid, buf);
        }
        if sysfs::is_dynamic(node) {
            stats::add(Counter::RenderSysfs);
            let passthrough = self.passthrough.load(std::sync::atomic::Ordering::Relaxed);
            // A node's rendered files are views: their failures are logged as a view's.
            let failed = |n: u32, file: NodeFile, e: io::Error| {
                stats::add(Counter::RenderErrors);
                crate::warn!("rendering node{n}/{file:?} for pid {pid}: {e}");
                e
            };
            let meminfo = self.sys(w, pid, SysDir::of(node), |shown| {
                let e = sysfs::entry(node, shown)?;
                match e.node_file() {
                    Some((n, NodeFile::Meminfo)) if !passthrough => return Ok(Some((n, e.host))),
                    Some((n, file)) if !passthrough => {
                        views::node_cpus_file(&e, file == NodeFile::Cpumap, shown, buf)
                            .map_err(|err| failed(n, file, err))?
                    }
                    _ => kfile::read_path_buf(&e.host, buf)?,
                }
                Ok(None)
            })?;
            if let Some((n, host)) = meminfo {
                views::node_meminfo(self, w, pid, n, &host, buf)
                    .map_err(|e| errno(&failed(n, NodeFile::Meminfo, e)))?;
            }
            return Ok(());
        }
        match tree::node(node) {
            Some(Node {
                kind: Kind::File(file),
                ..
            }) => match views::render(self, w, *file, pid, buf) {
                Ok(()) => {
                    if let Some(longest) = self.longest(node) {
                        longest.fetch_max(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(())
                }
                Err(e) => {
                    // The reader gets a plain EIO; the cause goes to the log.
                    stats::add(Counter::RenderErrors);
                    crate::warn!("rendering {file:?} for pid {pid}: {e}");
                    Err(libc::EIO)
                }
            },
            _ => Err(libc::EISDIR),
        }
    }
}

/// Copy `size` bytes of `data` from `offset` (none past the end) into the reply.
fn copy_range(data: &[u8], offset: u64, size: u32, o: &mut OutBuf<'_>) -> Result<(), i32> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start
        .saturating_add(size as usize)
        .min(data.len())
        .min(start + o.remaining());
    o.bytes(&data[start..end]).map_err(|_| libc::EIO)
}

impl Fs {
    /// The permissions of static node `n`: /proc/pressure's files are writable (0666,
    /// as the kernel's) where triggers can be written.
    fn perm(&self, n: &Node) -> u32 {
        match n.kind {
            Kind::File(tree::FileId::Pressure(_)) if self.psi.is_some() => 0o666,
            _ => n.perm,
        }
    }

    /// WRITE: a PSI trigger to a /proc/pressure file with --enable-psi-poll; any other
    /// write fails with EIO, as procfs's do.
    fn write(&self, w: &mut Worker, h: &InHeader, fh: u64, data: &[u8]) -> Result<u32, i32> {
        let (
            Some(psi),
            Some(Node {
                kind: Kind::File(tree::FileId::Pressure(p)),
                ..
            }),
        ) = (&self.psi, tree::node(h.nodeid))
        else {
            return Err(libc::EIO);
        };
        let privileged =
            crate::caps::process_has(h.pid, crate::caps::CAP_SYS_RESOURCE, &mut w.scratch);
        psi.write(fh, h.nodeid, privileged, data, || {
            views::pressure_file_rw(self, w, h.pid, *p)
        })
    }

    /// POLL: ENOSYS without --enable-psi-poll, which the kernel remembers: it never asks
    /// again, on any file, and poll(2) reports them ready (a poller of POLLPRI on a
    /// pressure file then sleeps until its timeout). With it, a pressure file answers what
    /// its trigger says, any other file that it is ready.
    fn poll(&self, node: u64, fh: u64, kh: u64, flags: u32) -> Result<u32, i32> {
        let psi = self.psi.as_ref().ok_or(libc::ENOSYS)?;
        if is_pressure(node) {
            Ok(psi.poll(fh, kh, flags & abi::POLL_SCHEDULE_NOTIFY != 0))
        } else {
            Ok(psi::DEFAULT_POLLMASK)
        }
    }

    /// A static node, by id.
    fn static_node(&self, id: u64) -> Result<&'static Node, i32> {
        tree::node(id).filter(|n| self.shown(n)).ok_or(libc::ENOENT)
    }

    /// Whether a static node exists here: /cgroup only with --enable-cgroup, /proc/pressure
    /// only with a unified hierarchy, and each node only where the host has what it shows.
    fn shown(&self, n: &Node) -> bool {
        let on_host = || {
            usize::try_from(n.id.wrapping_sub(1))
                .ok()
                .and_then(|i| self.host_has.get(i))
                .is_some_and(|&b| b)
        };
        match n.id {
            tree::CGROUP_DIR => self.cgroups.is_some(),
            // Without a unified hierarchy no container has PSI of its own.
            tree::PRESSURE_DIR => self.containers.hier.unified.is_some() && on_host(),
            _ => on_host(),
        }
    }
}

/// Whether `node` is a /proc/pressure file (the files that take PSI triggers).
fn is_pressure(node: u64) -> bool {
    matches!(
        tree::node(node).map(|n| n.kind),
        Some(Kind::File(tree::FileId::Pressure(_)))
    )
}

/// Whether the host has what static node `n` shows: /sys/devices/system/node,
/// /proc/pressure and each of its files, /sys/devices/system/cpu/enabled and the node
/// lists exist only on some kernels and machines; the rest everywhere.
fn on_host(n: &Node) -> bool {
    use tree::{CpuList, FileId};
    let exists = |p: &std::path::Path| p.exists();
    match (n.id, n.kind) {
        (tree::NODE_DIR, _) => exists("/sys/devices/system/node".as_ref()),
        (tree::PRESSURE_DIR, _) => exists("/proc/pressure".as_ref()),
        (
            _,
            Kind::File(
                f @ (FileId::CpuList(CpuList::Enabled) | FileId::Pressure(_) | FileId::NodeList(_)),
            ),
        ) => f.host_path().to_str().is_ok_and(|p| exists(p.as_ref())),
        _ => true,
    }
}

/// Write the directory entries from cookie `offset` on, as many as fit in `size`.
fn emit_dirents(entries: &[sysfs::DirEntry], offset: u64, size: u32, o: &mut OutBuf<'_>) {
    let limit = (size as usize).min(o.remaining());
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    for (i, (name, id, dtype)) in entries.iter().enumerate().skip(start) {
        if o.len() + dirent_len(name) > limit
            || encode::dirent(o, *id, i as u64 + 1, *dtype, name).is_err()
        {
            break;
        }
    }
}

fn dirent_len(name: &[u8]) -> usize {
    (abi::out_size::DIRENT_HEADER + name.len()).next_multiple_of(8)
}

/// The errno to answer for an I/O failure while rendering.
pub fn errno(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(n) if n > 0 && n < 512 => n,
        _ => libc::EIO,
    }
}
