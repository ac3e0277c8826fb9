//! The passthrough fast path: the kernel answers the reads of a re-opened file itself,
//! from a sealed memfd holding the snapshot rendered at OPEN (FUSE_PASSTHROUGH, 6.9+),
//! so such a file costs one round trip instead of three.
//!
//! The kernel's rules shape everything here. It keeps ONE backing file per inode while
//! any open naming it is live, and every open meanwhile must name that same id (a plain
//! open then fails with EINVAL, another id with EBUSY). Containers bind-mount the same
//! inodes, so opens of different containers overlap. Hence:
//! - Once a node has a backing id, every open of it names that id: with
//!   FOPEN_DIRECT_IO added when its reads must come to us (a snapshot per open, as
//!   without passthrough). No open is ever plain, so none can race one that names an id.
//! - Only a RE-OPEN reads from the backing file: an O_RDONLY open by a thread that
//!   released the same node within `REOPEN_WINDOW`, the open-read-close pollers. A first
//!   open may be a held fd that is read again from offset 0 (procps's top, vmstat,
//!   free -s): a passthrough open never reaches us again, so it would never change.
//! - A backing file is replaced only while no open we answered names it (`live` 0): the
//!   kernel drops an inode's backing at its last close, before we see that RELEASE.
//!   Ids are never closed while counted, so an overlapping open can still name one.
//! - A re-open of the same container shares a backing file rendered less than
//!   `SHARE_FOR` ago, unrendered; a backing file of another container, or an older one,
//!   is named with FOPEN_DIRECT_IO while it is live.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::handles::COUNTED;
use super::{Fs, Worker, sysfs, tree, views};
use crate::proto::abi::{self, FOPEN_DIRECT_IO, FOPEN_PASSTHROUGH};
use crate::proto::{InHeader, OutBuf, encode};
use crate::stats::{self, Counter};
use crate::{info, warn};

/// An open is a re-open when its thread released the same node this recently.
const REOPEN_WINDOW: Duration = Duration::from_secs(1);
/// A backing file this young is shared, unrendered, by re-opens of the same container:
/// its inputs are reused for as long anyway (`views::INPUT_TTL`).
const SHARE_FOR: Duration = views::INPUT_TTL;
/// Releasing threads remembered per node.
const RECENT: usize = 8;
/// Requests whose count changes are remembered per node (`Slot::applied`): more than can
/// be in flight on one node at a crash.
const APPLIED: usize = 8;
/// Set with `COUNTED` in the handle of an open that keeps no snapshot (the kernel serves
/// its reads); its upper half is the opening thread.
const NO_SNAPSHOT: u64 = 1 << 30;

/// Whose render a backing file holds: the container (cached under its pid namespace,
/// with its init) and whether the host's files were shown (SIGUSR2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    ns: u64,
    init: u32,
    host: bool,
}

/// One node's backing file, in the shared table (plain integers: a successor maps it).
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    /// The node (0: a free slot).
    node: u64,
    /// The backing id the kernel may hold for the node (0: none yet).
    id: u32,
    /// Opens we answered naming `id` whose RELEASE we have not seen.
    live: u32,
    /// Bumped with each new id: an install checks nothing replaced it meanwhile.
    version: u64,
    owner_ns: u64,
    owner_init: u32,
    /// Bit 0: an owner is set; bit 1: the host's files (SIGUSR2).
    owner_flags: u32,
    /// CLOCK_MONOTONIC ns of the render `id` holds.
    rendered_ns: u64,
    /// The requests (`unique`) whose count changes were made last, a ring: a request
    /// handled again, by a successor after a crash (resent, or answered from the ring
    /// arena), changes nothing twice.
    applied: [u64; APPLIED],
    applied_next: u64,
}

impl Slot {
    fn applied(&self, unique: u64) -> bool {
        unique != 0 && self.applied.contains(&unique)
    }

    fn record(&mut self, unique: u64) {
        if unique != 0 {
            let i = (self.applied_next % APPLIED as u64) as usize;
            self.applied[i] = unique;
            self.applied_next = self.applied_next.wrapping_add(1);
        }
    }

    /// Count an open named by request `unique`. The count is written before the request
    /// is recorded: a crash between the two over-counts (the safe direction).
    fn count(&mut self, unique: u64) {
        if !self.applied(unique) {
            self.live += 1;
            self.record(unique);
        }
    }

    /// Uncount a release, request `unique`: recorded first, for the same reason.
    fn uncount(&mut self, unique: u64) {
        if !self.applied(unique) {
            self.record(unique);
            self.live = self.live.saturating_sub(1);
        }
    }

    fn owner(&self) -> Option<Owner> {
        (self.owner_flags & 1 != 0).then_some(Owner {
            ns: self.owner_ns,
            init: self.owner_init,
            host: self.owner_flags & 2 != 0,
        })
    }

    fn set_owner(&mut self, owner: Option<Owner>) {
        let o = owner.unwrap_or(Owner {
            ns: 0,
            init: 0,
            host: false,
        });
        (self.owner_ns, self.owner_init) = (o.ns, o.init);
        self.owner_flags = u32::from(owner.is_some()) | u32::from(o.host) << 1;
    }

    fn shareable(&self, owner: Option<Owner>, now: u64) -> bool {
        self.id != 0
            && owner.is_some()
            && self.owner() == owner
            && now.saturating_sub(self.rendered_ns) < SHARE_FOR.as_nanos() as u64
    }
}

/// What only this process needs of a node: the threads that released it last, a ring.
#[derive(Default)]
struct Local {
    released: [(u32, u64); RECENT],
    next: usize,
}

/// Nodes in the table at most: the /proc views and every CPU's and memory node's files.
const SLOTS: usize = 1 << 14;
const TABLE_BYTES: usize = SLOTS * std::mem::size_of::<Slot>();

/// The table of every node's backing file, an open-addressed hash table in a MAP_SHARED
/// memfd: it goes to a successor with the connection (upgrade, takeover), and the keeper
/// holds it, so a successor after a crash knows which id each inode may hold. Entries
/// are written before the OPEN reply that depends on them.
struct Table {
    fd: OwnedFd,
    slots: *mut Slot,
    /// By slot index, for the nodes opened in this process.
    local: std::collections::HashMap<usize, Local>,
}

// SAFETY: the mapping is only reached through the Mutex that holds the Table.
unsafe impl Send for Table {}

impl Table {
    /// A new, empty table.
    fn create() -> io::Result<Table> {
        // SAFETY: a NUL-terminated name and valid flags; the new fd is ours alone.
        let fd = unsafe { libc::memfd_create(c"lxcfs-uring-backings".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        std::fs::File::from(fd.try_clone()?).set_len(TABLE_BYTES as u64)?;
        Table::map(fd)
    }

    /// Map a table handed over with the connection.
    fn map(fd: OwnedFd) -> io::Result<Table> {
        let len = std::fs::File::from(fd.try_clone()?).metadata()?.len();
        if len != TABLE_BYTES as u64 {
            return Err(io::Error::other(format!(
                "the backing table is {len} bytes, this build's {TABLE_BYTES}"
            )));
        }
        // SAFETY: a new shared mapping of the whole memfd (its size checked above); no
        // Rust object lives there but the plain-integer slots.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                TABLE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Table {
            fd,
            slots: p.cast(),
            local: Default::default(),
        })
    }

    /// The slot of `node` (taking a free one when `insert`), with its index.
    fn find(&mut self, node: u64, insert: bool) -> Option<(&mut Slot, &mut Local)> {
        let start = (node.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize % SLOTS;
        for i in (0..SLOTS).map(|k| (start + k) % SLOTS) {
            // SAFETY: i < SLOTS, within the mapping; the &mut self borrow makes this the
            // only reference into it.
            let slot = unsafe { &mut *self.slots.add(i) };
            if slot.node == node || (slot.node == 0 && insert) {
                slot.node = node;
                return Some((slot, self.local.entry(i).or_default()));
            }
            if slot.node == 0 {
                return None;
            }
        }
        None
    }

    /// (node, id, live) of every node with a backing id.
    fn entries(&mut self) -> Vec<(u64, u32, u32)> {
        (0..SLOTS)
            // SAFETY: i < SLOTS, within the mapping.
            .map(|i| unsafe { *self.slots.add(i) })
            .filter(|s| s.node != 0 && s.id != 0)
            .map(|s| (s.node, s.id, s.live))
            .collect()
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer referenced.
        unsafe { libc::munmap(self.slots.cast(), TABLE_BYTES) };
    }
}

/// CLOCK_MONOTONIC in ns: comparable across processes (a successor's).
fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64
}

/// What an OPEN of a node gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No passthrough here: a direct open with a snapshot of its own.
    Direct,
    /// The kernel serves the reads from backing `id` (this container's fresh render).
    Shared(u32),
    /// We serve the reads from a snapshot of the open's own; the open names the node's
    /// backing `id`, as the kernel requires of every open while it is live.
    PerOpen(u32),
    /// Render a new backing file, to replace the node's id of version `observed` if no
    /// open names it by then.
    Fresh { observed: u64, reopen: bool },
}

/// Every node's backing file, and the /dev/fuse file they are registered on.
pub struct Backings {
    /// The /dev/fuse file backing files are registered on (a duplicate of the session's);
    /// unset while passthrough is off.
    dev: OnceLock<OwnedFd>,
    /// None when passthrough was not asked for (and no predecessor used it).
    table: Mutex<Option<Table>>,
}

impl Backings {
    /// With `wanted` (--passthrough=auto), a new table to fill once INIT negotiated
    /// passthrough; without, none.
    pub fn new(wanted: bool) -> Backings {
        let table = wanted.then(Table::create).and_then(|t| {
            t.inspect_err(|e| warn!("passthrough: off, no memory for its table: {e}"))
                .ok()
        });
        Backings {
            dev: OnceLock::new(),
            table: Mutex::new(table),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Option<Table>> {
        // Every update below is a few plain stores: a panic leaves the table usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether to ask the kernel for passthrough at INIT.
    pub fn wanted(&self) -> bool {
        self.table().is_some()
    }

    /// The table's memfd, to hand over with the connection.
    pub fn table_fd(&self) -> io::Result<Option<OwnedFd>> {
        self.table().as_ref().map(|t| t.fd.try_clone()).transpose()
    }

    fn dev(&self) -> Option<BorrowedFd<'_>> {
        self.dev.get().map(|fd| fd.as_fd())
    }

    /// Register backing files on `dev` from now on.
    fn use_dev(&self, dev: BorrowedFd<'_>) -> io::Result<()> {
        let owned = dev.try_clone_to_owned()?;
        self.dev
            .set(owned)
            .map_err(|_| io::Error::other("a second /dev/fuse file for one connection"))
    }

    /// Called once INIT is answered: use passthrough if it was negotiated and the kernel
    /// lets us register a backing file on `dev` (CAP_SYS_ADMIN), and say so.
    pub fn start(&self, dev: BorrowedFd<'_>, negotiated: bool) {
        if !self.wanted() {
            info!("passthrough: off (--passthrough=off)");
            return;
        }
        if !negotiated {
            info!("passthrough: off, the kernel does not offer FUSE_PASSTHROUGH (Linux 6.9+)");
            return;
        }
        match register(dev, b"")
            .and_then(|id| unregister(dev, id))
            .and_then(|()| self.use_dev(dev))
        {
            Ok(()) => {
                info!("passthrough: in use, re-opened files are read from kernel-held snapshots");
            }
            Err(e) => info!("passthrough: off, the kernel refused a backing file: {e}"),
        }
    }

    /// Continue a predecessor's connection: its table (`fd`, when it had one) and, if it
    /// negotiated passthrough, its backing ids on `dev`, whatever our own option says
    /// (every open of a node the kernel may hold a backing file for must name it).
    pub fn resume(&self, dev: BorrowedFd<'_>, negotiated: bool, fd: Option<OwnedFd>) {
        let Some(fd) = fd else {
            if negotiated {
                warn!("passthrough: the predecessor negotiated it but handed no table over");
            }
            *self.table() = None;
            return;
        };
        match Table::map(fd) {
            Ok(mut t) => {
                let entries = t.entries();
                let live: u32 = entries.iter().map(|e| e.2).sum();
                *self.table() = Some(t);
                if negotiated {
                    match self.use_dev(dev) {
                        Ok(()) => info!(
                            "passthrough: in use, continuing {} backing files ({live} opens name them)",
                            entries.len()
                        ),
                        Err(e) => warn!(
                            "passthrough: cannot keep the connection's file ({e}): an open of a file the kernel holds a backing file for fails until its opens close"
                        ),
                    }
                }
            }
            Err(e) => warn!("passthrough: the handed-over table is unusable: {e}"),
        }
    }

    /// Decide how to answer an open of `node` by thread `tid` of `owner`'s container;
    /// `read_only` when it was opened O_RDONLY. Counts the open unless the plan is Fresh
    /// (then `install` or `fallback` counts it) or Direct.
    fn plan(
        &self,
        node: u64,
        owner: Option<Owner>,
        tid: u32,
        read_only: bool,
        unique: u64,
    ) -> Plan {
        let now = now_ns();
        let mut table = self.table();
        let Some((n, local)) = table.as_mut().and_then(|t| t.find(node, true)) else {
            return Plan::Direct;
        };
        let reopen = read_only
            && owner.is_some()
            && tid != 0
            && local.released.iter().any(|&(t, at)| {
                t == tid && at != 0 && now.saturating_sub(at) < REOPEN_WINDOW.as_nanos() as u64
            });
        if reopen && n.shareable(owner, now) {
            n.count(unique);
            return Plan::Shared(n.id);
        }
        if n.id == 0 || (reopen && n.live == 0) {
            return Plan::Fresh {
                observed: n.version,
                reopen,
            };
        }
        n.count(unique);
        Plan::PerOpen(n.id)
    }

    /// Make the newly registered `id` (holding `owner`'s render) the node's backing file
    /// if nothing replaced version `observed` and no open names it; else share or name
    /// the node's current id. Counts the open. Returns the plan and the id to unregister.
    fn install(
        &self,
        node: u64,
        owner: Option<Owner>,
        observed: u64,
        id: u32,
        reopen: bool,
        unique: u64,
    ) -> (Plan, Option<u32>) {
        let now = now_ns();
        let mut table = self.table();
        let Some((n, _)) = table.as_mut().and_then(|t| t.find(node, true)) else {
            return (Plan::Direct, Some(id));
        };
        if n.id == 0 || (n.version == observed && n.live == 0) {
            // Counted first: a crash before the id is written over-counts the old one
            // (it is then never replaced), never under-counts the new one.
            n.live = 1;
            n.record(unique);
            let old = std::mem::replace(&mut n.id, id);
            n.version += 1;
            n.set_owner(owner);
            n.rendered_ns = now;
            let plan = if reopen {
                Plan::Shared(id)
            } else {
                Plan::PerOpen(id)
            };
            return (plan, Some(old).filter(|&o| o != 0));
        }
        // Another open got there first: name its id.
        n.count(unique);
        let plan = if reopen && n.shareable(owner, now) {
            Plan::Shared(n.id)
        } else {
            Plan::PerOpen(n.id)
        };
        (plan, Some(id))
    }

    /// A Fresh plan that could not render or register: name the node's id if it has one
    /// (counted), else a direct open.
    fn fallback(&self, node: u64, unique: u64) -> Plan {
        let mut table = self.table();
        match table.as_mut().and_then(|t| t.find(node, false)) {
            Some((n, _)) if n.id != 0 => {
                n.count(unique);
                Plan::PerOpen(n.id)
            }
            _ => Plan::Direct,
        }
    }

    /// An open of `node` by `tid` we counted was released (request `unique`; 0: an open
    /// we counted could not be made).
    fn released(&self, node: u64, tid: u32, unique: u64) {
        let mut table = self.table();
        if let Some((n, local)) = table.as_mut().and_then(|t| t.find(node, false)) {
            n.uncount(unique);
            if tid != 0 {
                let i = local.next;
                local.released[i] = (tid, now_ns());
                local.next = (i + 1) % RECENT;
            }
        }
    }

    /// Unregister `id` (no open names it), logging a failure.
    fn close(&self, id: u32) {
        if let Some(dev) = self.dev()
            && let Err(e) = unregister(dev, id)
        {
            stats::add(Counter::BackingErrors);
            warn!("passthrough: closing backing file {id}: {e}");
        }
    }
}

/// The identity of request `h`, the same when the kernel resends it.
fn request(h: &InHeader) -> u64 {
    h.unique & !abi::UNIQUE_RESEND
}

/// Register a sealed memfd holding `bytes` as a backing file on `dev`; its id. The
/// kernel keeps its own reference: the memfd is closed here.
fn register(dev: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<u32> {
    // SAFETY: a NUL-terminated name and valid flags; the new fd is ours alone.
    let fd = unsafe {
        libc::memfd_create(
            c"lxcfs-uring-snapshot".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and nothing else owns it.
    let memfd = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    (&memfd).write_all(bytes)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS takes an int argument; memfd is open.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // struct fuse_backing_map { int32_t fd; uint32_t flags; uint64_t padding; }
    #[repr(C)]
    struct BackingMap {
        fd: i32,
        flags: u32,
        padding: u64,
    }
    let map = BackingMap {
        fd: memfd.as_raw_fd(),
        flags: 0,
        padding: 0,
    };
    // SAFETY: FUSE_DEV_IOC_BACKING_OPEN reads a fuse_backing_map, which `map` is laid out
    // as and outlives the call.
    let id = unsafe { libc::ioctl(dev.as_raw_fd(), abi::DEV_IOC_BACKING_OPEN as _, &map) };
    match u32::try_from(id) {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Free backing id `id` on `dev`.
fn unregister(dev: BorrowedFd<'_>, id: u32) -> io::Result<()> {
    // SAFETY: FUSE_DEV_IOC_BACKING_CLOSE reads a u32, which `id` is and outlives the call.
    if unsafe { libc::ioctl(dev.as_raw_fd(), abi::DEV_IOC_BACKING_CLOSE as _, &id) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Fs {
    /// Whether opens of `node` (a file; not below /cgroup) may name a backing file: every
    /// view but /proc/pressure, whose files are opened for writing (triggers).
    fn backable(&self, node: u64) -> bool {
        sysfs::is_dynamic(node)
            || matches!(tree::node(node).map(|n| n.kind), Some(tree::Kind::File(_)))
                && !super::is_pressure(node)
    }

    /// The container whose render `pid` sees.
    fn owner(&self, w: &mut Worker, pid: u32) -> Option<Owner> {
        let host = self.passthrough.load(Ordering::Relaxed);
        let c = self
            .containers
            .resolve_for(&mut w.callers, pid, &mut w.scratch)
            .ok()?;
        Some(Owner {
            ns: c.ns(),
            init: c.init,
            host,
        })
    }

    /// Answer the OPEN of file `h.nodeid` (with open(2)'s `flags`).
    pub(super) fn open_reply(
        &self,
        w: &mut Worker,
        h: &InHeader,
        flags: u32,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let node = h.nodeid;
        let b = &self.backings;
        let plan = match b.dev() {
            Some(_) if self.backable(node) => {
                let read_only = flags & libc::O_ACCMODE as u32 == libc::O_RDONLY as u32;
                let owner = self.owner(w, h.pid);
                match b.plan(node, owner, h.pid, read_only, request(h)) {
                    Plan::Fresh { observed, reopen } => {
                        self.fresh(w, h, flags, owner, observed, reopen, o)?;
                        return Ok(());
                    }
                    p => p,
                }
            }
            _ => Plan::Direct,
        };
        self.reply_plan(w, h, flags, plan, None, o)
    }

    /// Render a new backing file for the open `h` and answer it.
    #[allow(clippy::too_many_arguments)]
    fn fresh(
        &self,
        w: &mut Worker,
        h: &InHeader,
        flags: u32,
        owner: Option<Owner>,
        observed: u64,
        reopen: bool,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let b = &self.backings;
        let mut buf = std::mem::take(&mut w.scratch_file);
        buf.clear();
        let registered = self.render_node(w, h.nodeid, h.pid, &mut buf).map(|()| {
            let dev = b.dev().ok_or(io::Error::from_raw_os_error(libc::EBADF));
            dev.and_then(|dev| register(dev, &buf))
        });
        let rendered_ok = registered.is_ok();
        let plan = match registered {
            Ok(Ok(id)) => {
                let (plan, unused) = b.install(h.nodeid, owner, observed, id, reopen, request(h));
                if let Some(unused) = unused {
                    b.close(unused);
                }
                plan
            }
            Ok(Err(e)) => {
                stats::add(Counter::BackingErrors);
                warn!("passthrough: registering a backing file: {e}");
                b.fallback(h.nodeid, request(h))
            }
            // The render failed: the open's first read renders again and answers it.
            Err(_) => b.fallback(h.nodeid, request(h)),
        };
        let rendered = rendered_ok.then_some(&buf[..]);
        let r = self.reply_plan(w, h, flags, plan, rendered, o);
        w.scratch_file = buf;
        r
    }

    /// Answer the open `h` as `plan` says; `rendered`: its snapshot, when already made.
    fn reply_plan(
        &self,
        w: &mut Worker,
        h: &InHeader,
        flags: u32,
        plan: Plan,
        rendered: Option<&[u8]>,
        o: &mut OutBuf<'_>,
    ) -> Result<(), i32> {
        let overflow = |_| libc::EIO;
        let (fh, open_flags, id) = match plan {
            Plan::Direct => (self.open_file(w, h, flags)?, FOPEN_DIRECT_IO, 0),
            Plan::Shared(id) => {
                stats::add(if rendered.is_some() {
                    Counter::BackingFresh
                } else {
                    Counter::BackingShared
                });
                let fh = COUNTED | NO_SNAPSHOT | u64::from(h.pid) << 32;
                (fh, FOPEN_PASSTHROUGH, id)
            }
            Plan::PerOpen(id) => {
                stats::add(Counter::BackingDirect);
                let opened = match rendered {
                    Some(bytes) => self.open_rendered(w, h, bytes),
                    None => self.open_file(w, h, flags),
                };
                let fh = match opened {
                    Ok(fh) => fh,
                    Err(e) => {
                        self.backings.released(h.nodeid, 0, 0);
                        return Err(e);
                    }
                };
                self.handles.with(fh, |f| f.opener = h.pid);
                (fh | COUNTED, FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO, id)
            }
            Plan::Fresh { .. } => return Err(libc::EIO),
        };
        encode::open_backed(o, fh, open_flags, id).map_err(overflow)
    }

    /// Open `h.nodeid` with `bytes` as its snapshot.
    fn open_rendered(&self, w: &Worker, h: &InHeader, bytes: &[u8]) -> Result<u64, i32> {
        let fh = self.handles.open(h.nodeid, w.id).ok_or(libc::ENFILE)?;
        let mut snapshot = self.handles.buffer(fh);
        snapshot.extend_from_slice(bytes);
        self.handles.store(fh, snapshot);
        Ok(fh)
    }

    /// RELEASE `h` of `fh`: close it, and uncount it from the node's backing file.
    pub(super) fn release(&self, h: &InHeader, fh: u64) {
        if fh & COUNTED == 0 {
            self.handles.release(fh);
            return;
        }
        let opener = if fh & NO_SNAPSHOT != 0 {
            (fh >> 32) as u32
        } else {
            let opener = self.handles.with(fh, |f| f.opener).unwrap_or(0);
            self.handles.release(fh);
            opener
        };
        self.backings.released(h.nodeid, opener, request(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: u64 = 6;
    const A: Option<Owner> = Some(Owner {
        ns: 1,
        init: 10,
        host: false,
    });
    const B: Option<Owner> = Some(Owner {
        ns: 2,
        init: 20,
        host: false,
    });

    /// A request identity never used before.
    fn unique() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// `plan`, with a Fresh plan installed as backing id `id`.
    fn open(b: &Backings, owner: Option<Owner>, tid: u32, id: u32) -> Plan {
        let u = unique();
        match b.plan(NODE, owner, tid, true, u) {
            Plan::Fresh { observed, reopen } => b.install(NODE, owner, observed, id, reopen, u).0,
            p => p,
        }
    }

    fn release(b: &Backings, tid: u32) {
        b.released(NODE, tid, unique());
    }

    fn live(b: &Backings) -> u32 {
        b.table()
            .as_mut()
            .unwrap()
            .find(NODE, false)
            .unwrap()
            .0
            .live
    }

    #[test]
    fn only_reopens_read_from_the_backing_file_and_every_open_names_it() {
        let b = Backings::new(true);
        // A first open makes the node's backing file but reads through us.
        assert_eq!(open(&b, A, 100, 1), Plan::PerOpen(1));
        release(&b, 100);
        // The same thread again: a re-open, sharing the fresh backing file.
        assert_eq!(open(&b, A, 100, 2), Plan::Shared(1));
        // Another container's first open while it is live names it, reads through us.
        assert_eq!(open(&b, B, 200, 3), Plan::PerOpen(1));
        assert_eq!(live(&b), 2);
        // B's thread re-opens while A's open is live: A's backing file is not B's.
        release(&b, 200);
        assert_eq!(open(&b, B, 200, 4), Plan::PerOpen(1));
        release(&b, 200);
        release(&b, 100);
        assert_eq!(live(&b), 0);
        // Nothing names it now: B's next re-open gets a backing file of its own.
        assert_eq!(open(&b, B, 200, 5), Plan::Shared(5));
        // A write-open is never a re-open, and names the live id.
        assert_eq!(b.plan(NODE, A, 100, false, unique()), Plan::PerOpen(5));
    }

    #[test]
    fn a_stale_backing_file_is_replaced_only_when_no_open_names_it() {
        let b = Backings::new(true);
        assert_eq!(open(&b, A, 100, 1), Plan::PerOpen(1));
        release(&b, 100);
        std::thread::sleep(SHARE_FOR);
        // Held by another open: the re-open reads through us.
        assert_eq!(open(&b, A, 300, 7), Plan::PerOpen(1));
        assert_eq!(open(&b, A, 100, 2), Plan::PerOpen(1));
        release(&b, 300);
        release(&b, 100);
        // Then replaced, the old id given back.
        let Plan::Fresh { observed, reopen } = b.plan(NODE, A, 100, true, unique()) else {
            panic!("a fresh backing file");
        };
        assert_eq!(
            b.install(NODE, A, observed, 2, reopen, unique()),
            (Plan::Shared(2), Some(1))
        );
    }

    #[test]
    fn racing_fresh_opens_name_one_backing_file() {
        let b = Backings::new(true);
        let first = b.plan(NODE, A, 100, true, unique());
        let second = b.plan(NODE, A, 200, true, unique());
        let (Plan::Fresh { observed: o1, .. }, Plan::Fresh { observed: o2, .. }) = (first, second)
        else {
            panic!("{first:?} {second:?}");
        };
        assert_eq!(
            b.install(NODE, A, o1, 1, false, unique()),
            (Plan::PerOpen(1), None)
        );
        // The slower one gives its id back and names the first's.
        assert_eq!(
            b.install(NODE, A, o2, 2, false, unique()),
            (Plan::PerOpen(1), Some(2))
        );
        assert_eq!(live(&b), 2);
    }

    #[test]
    fn a_successor_continues_the_table() {
        let b = Backings::new(true);
        assert_eq!(open(&b, A, 100, 9), Plan::PerOpen(9));
        let fd = b.table_fd().unwrap().unwrap();
        let next = Backings::new(false);
        let dev = std::fs::File::open("/dev/null").unwrap();
        next.resume(dev.as_fd(), false, Some(fd));
        // The open from before is still counted, and its id named.
        assert_eq!(next.plan(NODE, B, 200, true, unique()), Plan::PerOpen(9));
        assert_eq!(live(&next), 2);
        assert_eq!(live(&b), 2, "one table, shared");
    }

    #[test]
    fn a_request_handled_again_changes_the_count_once() {
        let b = Backings::new(true);
        assert_eq!(open(&b, A, 100, 1), Plan::PerOpen(1));
        // An OPEN a successor answers again (the kernel resent it after a crash).
        let u = unique();
        assert_eq!(b.plan(NODE, B, 200, true, u), Plan::PerOpen(1));
        assert_eq!(b.plan(NODE, B, 200, true, u), Plan::PerOpen(1));
        assert_eq!(live(&b), 2);
        // Its RELEASE, likewise.
        let r = unique();
        b.released(NODE, 200, r);
        b.released(NODE, 200, r);
        assert_eq!(live(&b), 1, "the first open is still counted");
    }
}
