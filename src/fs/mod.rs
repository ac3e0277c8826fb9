//! The filesystem: requests in, replies out, over the static tree.

pub mod handles;
pub mod tree;
pub mod views;

use std::io;

use crate::container::Containers;
use crate::proto::abi::{self, FOPEN_DIRECT_IO};
use crate::proto::{Attr, Op, OutBuf, Overflow, Request, Validity, encode};
use handles::Handles;
use tree::{Kind, Node};
pub use views::ViewOptions;

/// How long the kernel may cache our (static) entries and attributes. Nothing in the
/// tree ever changes, and file sizes are not used (every file is direct I/O).
const STATIC_TTL: Validity = Validity {
    secs: 3600,
    nsecs: 0,
};

const DT_DIR: u32 = 4;
const DT_REG: u32 = 8;

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
    pub files: views::HostFiles,
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
        Worker {
            id,
            scratch: Vec::with_capacity(8192),
            host: Vec::with_capacity(8192),
            files: views::HostFiles::open(),
            callers: Default::default(),
            clk_tck,
        }
    }
}

pub struct Fs {
    pub opts: ViewOptions,
    pub containers: Containers,
    pub handles: Handles,
    /// Per-container load averages, with -l.
    pub loadavg: Option<std::sync::Arc<crate::loadavg::LoadTracker>>,
    /// Seconds since the epoch at mount: the tree's timestamps.
    mount_time: u64,
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
            loadavg,
            mount_time,
        }
    }

    fn attr(&self, n: &Node) -> Attr {
        let (mode, size) = match n.kind {
            Kind::Dir => (libc::S_IFDIR | n.perm, 0),
            // procfs reports size 0, sysfs 4096: keep what the host file says.
            Kind::File(_) => (
                libc::S_IFREG | n.perm,
                if tree::in_sys(n) { 4096 } else { 0 },
            ),
        };
        Attr {
            ino: n.id,
            size,
            mode,
            nlink: tree::nlink(n),
            uid: 0,
            gid: 0,
            time: self.mount_time,
        }
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
        let node = || tree::node(h.nodeid).ok_or(libc::ENOENT);
        let overflow = |_: Overflow| libc::EIO;
        match req.op {
            Op::Lookup { name } => {
                let n = tree::lookup(h.nodeid, name).ok_or(libc::ENOENT)?;
                encode::entry(o, &self.attr(n), STATIC_TTL, STATIC_TTL).map_err(overflow)?;
            }
            Op::Forget { .. } | Op::BatchForget { .. } => return Ok(None),
            Op::Getattr { .. } => {
                encode::attr_out(o, &self.attr(node()?), STATIC_TTL).map_err(overflow)?;
            }
            Op::Open { flags } => {
                let n = node()?;
                if n.kind == Kind::Dir {
                    return Err(libc::EISDIR);
                }
                let writes = flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32;
                if writes && tree::in_sys(n) {
                    return Err(libc::EACCES);
                }
                let fh = self.handles.open(n.id, w.id).ok_or(libc::ENFILE)?;
                encode::open_out(o, fh, FOPEN_DIRECT_IO).map_err(overflow)?;
            }
            Op::Opendir { .. } => {
                if node()?.kind != Kind::Dir {
                    return Err(libc::ENOTDIR);
                }
                encode::open_out(o, 0, 0).map_err(overflow)?;
            }
            Op::Read { fh, offset, size } => self.read(w, h.pid, fh, offset, size, o)?,
            Op::Readdir { offset, size, .. } => self.readdir(node()?, offset, size, o),
            Op::Release { fh } => {
                self.handles.release(fh);
            }
            Op::Releasedir { .. } => {}
            Op::Statfs => encode::statfs(o, 255).map_err(overflow)?,
            // procfs: a write to these files fails with EIO.
            Op::Write { .. } => return Err(libc::EIO),
            Op::Setattr | Op::Remove => return Err(libc::EPERM),
            Op::Create { .. } => return Err(libc::EACCES),
            Op::Readlink => return Err(libc::EINVAL),
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

    fn read(
        &self,
        w: &mut Worker,
        pid: u32,
        fh: u64,
        offset: u64,
        size: u32,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let (node, rendered) = self
            .handles
            .with(fh, |f| (f.node, f.snapshot.is_some()))
            .ok_or(libc::EBADF)?;
        if offset == 0 || !rendered {
            let Some(Node {
                kind: Kind::File(file),
                ..
            }) = tree::node(node)
            else {
                return Err(libc::EISDIR);
            };
            let mut buf = self.handles.take_buffer(fh);
            if let Err(e) = views::render(self, w, *file, pid, &mut buf) {
                crate::warn!("rendering {:?} for pid {pid}: {e}", file);
                return Err(errno(&e));
            }
            self.handles.with(fh, |f| f.snapshot = Some(buf));
        }
        self.handles
            .with(fh, |f| {
                let snap = f.snapshot.as_deref().unwrap_or_default();
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(snap.len());
                let end = start
                    .saturating_add(size as usize)
                    .min(snap.len())
                    .min(start + o.remaining());
                o.bytes(&snap[start..end])
            })
            .ok_or(libc::EBADF)?
            .map_err(|_| libc::EIO)
    }

    fn readdir(&self, dir: &Node, offset: u64, size: u32, o: &mut OutBuf<'_>) {
        let parent = tree::node(dir.parent).unwrap_or(dir);
        let dots = [(dir, &b"."[..]), (parent, &b".."[..])];
        let entries = dots
            .into_iter()
            .chain(tree::children(dir.id).map(|n| (n, n.name)));
        let limit = (size as usize).min(o.remaining());
        for (i, (n, name)) in entries.enumerate().skip(offset as usize) {
            let dtype = if n.kind == Kind::Dir { DT_DIR } else { DT_REG };
            if o.len() + dirent_len(name) > limit
                || encode::dirent(o, n.id, i as u64 + 1, dtype, name).is_err()
            {
                break;
            }
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
