//! Transports: how requests get from the kernel to `Fs::handle` and replies back.
//!
//! Every connection starts on /dev/fuse (INIT, FORGET, INTERRUPT never travel over the
//! ring). After INIT, either FUSE-over-io_uring workers take over (one pinned thread per
//! CPU, each serving the kernel's queue of its CPU), or more classic workers are started,
//! each on its own clone of the /dev/fuse file.

pub mod arena;
pub mod classic;
pub mod fill;
pub mod freeze;
pub mod supervise;
pub mod uring;

use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

use crate::fs::{Fs, Reply, Worker};
use crate::proto::abi::init_flags;
use crate::proto::{InitIn, InitOut, Op, OutBuf, Request, abi, encode};
use crate::stats::{self, Counter};
use crate::{info, warn};

/// Which transport to serve with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// FUSE-over-io_uring where the kernel offers it, else classic.
    Auto,
    /// FUSE-over-io_uring (Linux 6.14+); refuse to start without it.
    Uring,
    /// read/write on cloned /dev/fuse files.
    Classic,
}

/// Largest write the kernel may send us; nothing is writable, so the minimum.
pub const MAX_WRITE: u32 = 4096;
/// Largest READ the kernel may send us, in pages (32 KiB): every file a container usually
/// has fits in one. The kernel pins this many pages of a reader's buffer for every direct
/// I/O READ, the empty one at EOF included, so a `cat` (128 KiB reads) paid for 32 pinned,
/// dirtied and unpinned pages twice per file at the kernel's default; with 8 it reads
/// meminfo ~15% faster (BENCHMARKS.md). A larger file takes one more READ per 32 KiB.
pub const MAX_PAGES: u16 = 8;
/// Largest reply payload we produce on a connection we negotiate.
pub const MAX_PAYLOAD: usize = MAX_PAGES as usize * 4096;
/// The kernel's max_pages when INIT did not negotiate one (FUSE_DEFAULT_MAX_PAGES_PER_REQ).
const KERNEL_DEFAULT_PAGES: usize = 32;

/// The oldest protocol we serve: 7.31 (Linux 5.9) has everything we rely on.
const MIN_MINOR: u32 = 31;

/// One mounted connection and its state.
pub struct Session {
    pub fs: Fs,
    /// The original /dev/fuse file: the connection lives while it is open.
    pub dev: OwnedFd,
    pub transport: TransportKind,
    pub threads: usize,
    init: OnceLock<InitOut>,
    /// What the kernel offered at INIT (HAS_RESEND tells whether an upgrade is lossless).
    kernel_flags: OnceLock<u64>,
    /// Set while handing the connection over: replies are held back, so the kernel resends
    /// those requests to the successor (or the successor answers them from the arena).
    pub freeze: freeze::Freeze,
    /// The /dev/fuse clones the classic workers serve, shared with them (handed over with
    /// the connection).
    pub clones: std::sync::Mutex<Vec<Arc<OwnedFd>>>,
    /// The keeper process holding the connection for a successor should we crash (0: none).
    pub keeper: std::sync::atomic::AtomicU32,
    /// The helper sending a request through each CPU's queue after a recovery, while it
    /// runs (0: none): an upgrade in the meantime hands it to the new image to reap.
    pub nudger: std::sync::atomic::AtomicU32,
    /// The io_uring entries' memory, on that transport.
    pub arena: OnceLock<arena::Arena>,
}

impl Session {
    pub fn new(fs: Fs, dev: OwnedFd, transport: TransportKind, threads: usize) -> Session {
        Session {
            fs,
            dev,
            transport,
            threads: threads.max(1),
            init: OnceLock::new(),
            kernel_flags: OnceLock::new(),
            freeze: Default::default(),
            clones: Default::default(),
            keeper: Default::default(),
            nudger: Default::default(),
            arena: OnceLock::new(),
        }
    }

    /// A session continuing a connection a predecessor image negotiated.
    pub fn resumed(mut self, init: InitOut, kernel_flags: u64) -> Session {
        self.init = OnceLock::from(init);
        self.kernel_flags = OnceLock::from(kernel_flags);
        self
    }

    /// The flags the kernel offered at INIT.
    pub fn kernel_flags(&self) -> u64 {
        self.kernel_flags.get().copied().unwrap_or(0)
    }

    /// Negotiated INIT, once the kernel sent it.
    pub fn init(&self) -> Option<&InitOut> {
        self.init.get()
    }

    /// Room for the largest reply payload the kernel may ask of this connection: what
    /// INIT negotiated, which a predecessor of another version may have set larger.
    pub fn payload_capacity(&self) -> usize {
        let pages = match self.init().map(|i| i.max_pages) {
            Some(0) => KERNEL_DEFAULT_PAGES,
            Some(n) => n as usize,
            None => 0,
        };
        (pages * 4096).max(MAX_PAYLOAD)
    }

    fn negotiate(&self, k: &InitIn) -> Result<InitOut, i32> {
        if k.major != abi::KERNEL_VERSION || k.minor < MIN_MINOR {
            warn!(
                "the kernel speaks FUSE {}.{}; lxcfs-uring needs 7.{MIN_MINOR} or newer (Linux 5.9+)",
                k.major, k.minor
            );
            return Err(libc::EPROTO);
        }
        // ASYNC_DIO: the kernel sends an io_uring or AIO read as requests it waits for
        // asynchronously. Without it, io_uring retries a short read (every read that
        // reaches the end of one of our files) at the same offset, since the kernel's
        // direct I/O of an asynchronous request does not advance its position, and the
        // reader gets the file again and again until its buffer is full.
        let mut want = init_flags::ASYNC_READ
            | init_flags::ASYNC_DIO
            | init_flags::PARALLEL_DIROPS
            | init_flags::MAX_PAGES
            | init_flags::INIT_EXT;
        if self.transport != TransportKind::Classic {
            want |= init_flags::OVER_IO_URING;
        }
        if self.fs.backings.wanted() {
            want |= init_flags::PASSTHROUGH;
        }
        let _ = self.kernel_flags.set(k.flags);
        Ok(*self
            .init
            .get_or_init(|| InitOut::negotiate(k, want, MAX_WRITE, MAX_PAGES)))
    }

    /// Answer one request: INIT here, everything else by the filesystem.
    pub fn handle(&self, w: &mut Worker, req: &Request<'_>, out: &mut [u8]) -> Reply {
        let start = std::time::Instant::now();
        let reply = self.dispatch(w, req, out);
        let (op, err) = match req.op {
            Op::Lookup { .. } => (Counter::OpLookup, Counter::ErrLookup),
            Op::Getattr { .. } => (Counter::OpGetattr, Counter::ErrGetattr),
            Op::Open { .. } | Op::Opendir { .. } => (Counter::OpOpen, Counter::ErrOpen),
            Op::Read { .. } => (Counter::OpRead, Counter::ErrRead),
            Op::Readdir { .. } => (Counter::OpReaddir, Counter::ErrReaddir),
            Op::Release { .. } | Op::Releasedir { .. } => (Counter::OpRelease, Counter::ErrRelease),
            _ => (Counter::OpOther, Counter::ErrOther),
        };
        stats::add(op);
        // ENOSYS answers are how we turn features off, and a page-cache READ is refused
        // by design (counted apart): neither is a failure.
        if matches!(reply, Reply::Error(e) if e != libc::ENOSYS) && !req.op.is_page_cache_read() {
            stats::add(err);
        }
        stats::latency(start.elapsed().as_nanos() as u64);
        reply
    }

    fn dispatch(&self, w: &mut Worker, req: &Request<'_>, out: &mut [u8]) -> Reply {
        match req.op {
            Op::Init(k) => match self.negotiate(&k) {
                Ok(init) => {
                    let mut o = OutBuf::new(out);
                    match init.encode(&mut o) {
                        Ok(()) => Reply::Data(o.len()),
                        Err(_) => Reply::Error(libc::EIO),
                    }
                }
                Err(e) => Reply::Error(e),
            },
            // A bug must cost one request an EIO, never the daemon every container uses.
            _ => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.fs.handle(w, req, out)
            })) {
                Ok(reply) => reply,
                Err(_) => {
                    stats::add(Counter::Panics);
                    warn!(
                        "BUG: handling opcode {} for pid {} panicked; answered EIO",
                        req.header.opcode, req.header.pid
                    );
                    Reply::Error(libc::EIO)
                }
            },
        }
    }
}

/// Encode the 16-byte header of a reply carrying `reply` into `hdr`; the length of the
/// whole reply (header + payload), or None when no reply is due.
pub fn reply_header(hdr: &mut [u8], unique: u64, reply: Reply) -> Option<usize> {
    let (len, error) = match reply {
        Reply::Data(n) => (abi::OUT_HEADER_LEN + n, 0),
        Reply::Error(e) => (abi::OUT_HEADER_LEN, -e),
        Reply::None => return None,
    };
    encode::out_header(hdr, len as u32, error, unique).ok()?;
    Some(len)
}

/// Serve `session` until the connection ends. Returns when the last worker stops.
pub fn serve(session: Arc<Session>) {
    let main = {
        let s = session.clone();
        std::thread::Builder::new()
            .name("fuse-dev".into())
            .spawn(move || classic::run_main(&s, after_init))
    };
    match main {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => warn!("cannot start the /dev/fuse reader: {e}"),
    }
}

/// Called on the /dev/fuse reader once INIT is answered: start the workers.
fn after_init(s: &Arc<Session>) {
    let Some(init) = s.init() else { return };
    use std::os::fd::AsFd;
    s.fs.backings
        .start(s.dev.as_fd(), init.flags & init_flags::PASSTHROUGH != 0);
    if init.flags & init_flags::OVER_IO_URING != 0 {
        let started = uring::check_rings()
            .and_then(|()| uring::new_arena(s.payload_capacity()))
            .and_then(|a| {
                let _ = s.arena.set(a);
                uring::start(s.clone())
            });
        match started {
            Ok(n) => {
                stats::set_transport("uring");
                info!("serving with FUSE-over-io_uring: {n} pinned workers");
                return;
            }
            // Whatever the kernel then routes through /dev/fuse is served by classic
            // workers; if it waits for the ring instead, only a restart helps.
            Err(e) => warn!(
                "FUSE-over-io_uring failed to start: {e}; serving /dev/fuse with classic workers \
                 (if reads hang, restart with --transport classic)"
            ),
        }
    } else if s.transport == TransportKind::Uring {
        warn!("the kernel did not offer FUSE-over-io_uring; serving with the classic transport");
    }
    stats::set_transport("classic");
    let n = classic::start_clones(s.clone());
    info!("serving with the classic transport: {} workers", n + 1);
}
