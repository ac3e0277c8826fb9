//! FUSE-over-io_uring (Linux 6.14+): the kernel hands each request to a ring entry of the
//! queue of the CPU the caller runs on. One worker thread per online CPU, pinned there,
//! serves that CPU's queue, so a request is answered without a cross-CPU wakeup.
//!
//! Each entry is a 288-byte header (fuse_uring_req_header: in_out, op_in, ent_in_out) and
//! a payload buffer registered once; a single COMMIT_AND_FETCH both answers a request and
//! re-arms the entry for the next. The buffers live in the shared arena (arena.rs), so a
//! successor can answer what the kernel handed to a dead predecessor (`recover`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, compiler_fence};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use nix::sched::CpuSet;
use nix::unistd::Pid;

use super::arena::{Arena, Shared};
use super::{MAX_WRITE, Session, reply_header};
use crate::fs::{Reply, Worker};
use crate::proto::{self, abi};
use crate::{cpulist, debug, info, warn};

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// sizeof(struct fuse_uring_req_header) and the offsets inside it.
const HEADER_LEN: usize = 288;
const OP_IN: usize = 128;
const ENT_IN_OUT: usize = 256;
const ENT_COMMIT_ID: usize = ENT_IN_OUT + 8;
const ENT_PAYLOAD_SZ: usize = ENT_IN_OUT + 16;

/// Ring entries per queue. One: a worker answers one request at a time anyway, and
/// requests that arrive meanwhile wait in the kernel's queue until the entry's commit
/// fetches them, with no extra wakeup (the e2e bench cannot tell 1, 2 and 8 apart). And
/// an armed entry is a request lost if the server is killed: the kernel cancels what it
/// routes to a dead task's armed entries (5 SIGKILLs under load: ~12 lost with 8 entries,
/// 3-6 with 2, 0-1 with 1).
const DEPTH: usize = 1;
/// The user_data of the READ of a worker's waker (entries' are their index).
const WAKE: u64 = u64::MAX;
/// How long to keep retrying a REGISTER the kernel answers EAGAIN (INIT not yet done).
const REGISTER_RETRIES: u32 = 1000;

/// The ring arena for this machine: DEPTH entries for every possible CPU's queue, each
/// with room for a `payload`-byte reply.
pub fn new_arena(payload: usize) -> io::Result<Arena> {
    let possible = cpulist::read(c"/sys/devices/system/cpu/possible")?;
    Arena::create(
        possible.len(),
        DEPTH,
        payload.max(8192).max(MAX_WRITE as usize),
    )
}

/// Start serving with a fresh set of entries.
pub fn start(s: Arc<Session>) -> io::Result<usize> {
    spawn_workers(s, None)
}

/// Start serving entries a predecessor registered (its arena, adopted by the session):
/// answer the requests it held, re-arm what the kernel still knows, register afresh what
/// it does not, then send one request through each CPU's queue so requests that queued
/// up while nobody served are handed out again. The predecessor must be gone.
pub fn recover(s: Arc<Session>, mountpoint: PathBuf) -> io::Result<usize> {
    spawn_workers(s, Some(mountpoint))
}

/// One pinned worker per online CPU. Every possible CPU's queue gets entries (the kernel
/// uses the ring only once all have some); queues of offline CPUs are served by the
/// online workers in turn.
fn spawn_workers(s: Arc<Session>, recovering: Option<PathBuf>) -> io::Result<usize> {
    let possible = cpulist::read(c"/sys/devices/system/cpu/possible")?;
    let online = cpulist::read(c"/sys/devices/system/cpu/online")?;
    if online.is_empty() {
        return Err(io::Error::other("no online CPU"));
    }
    let arena = s
        .arena
        .get()
        .ok_or_else(|| io::Error::other("no ring arena"))?;
    // The arena's depth, not ours: a predecessor of another version may have used another.
    let depth = arena.depth();
    if arena.slots() < possible.len() * depth {
        return Err(io::Error::other(
            "the ring arena has fewer entries than this machine has CPU queues",
        ));
    }
    // Slots of queue k: k*depth .. (k+1)*depth, k the CPU's place in the possible list.
    let mut work: Vec<Vec<(u16, usize)>> = vec![Vec::new(); online.len()];
    let mut spill = 0;
    for (k, &cpu) in possible.iter().enumerate() {
        let qid = u16::try_from(cpu).map_err(|_| io::Error::other("CPU id out of range"))?;
        let worker = match online.iter().position(|&c| c == cpu) {
            Some(i) => i,
            None => {
                spill += 1;
                spill % online.len()
            }
        };
        work[worker].extend((k * depth..(k + 1) * depth).map(|slot| (qid, slot)));
    }
    let recovery = recovering.map(|mountpoint| {
        Arc::new(Recovery {
            mountpoint,
            pending: AtomicUsize::new(online.len()),
        })
    });
    for (i, (&cpu, slots)) in online.iter().zip(work).enumerate() {
        let s = s.clone();
        let nudge = recovery.clone();
        std::thread::Builder::new()
            .name(format!("uring-{cpu}"))
            .spawn(move || {
                let own: Vec<usize> = slots.iter().map(|&(_, slot)| slot).collect();
                let name = format!("the io_uring worker on CPU {cpu}");
                super::supervise::run(&s, &own, &name, || {
                    run_worker(&s, i + 1, cpu, &slots, nudge).map_err(|e| e.to_string())
                });
            })?;
    }
    Ok(online.len())
}

/// A worker's ring, with room for `entries` submissions: only its own thread submits, and
/// completions are reaped when it waits.
fn new_ring(entries: usize) -> io::Result<IoUring<squeue::Entry128, cqueue::Entry>> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_defer_taskrun()
        .build(entries.next_power_of_two() as u32)
}

/// Whether this process may set up the workers' rings (kernel.io_uring_disabled, a
/// seccomp filter or the memlock limit may refuse it). Asked before any worker starts, as
/// a worker that cannot serve its queue ends the process (supervise.rs).
pub fn check_rings() -> io::Result<()> {
    new_ring(1).map(drop)
}

/// One ring entry: its slot of the arena. The kernel keeps the addresses from REGISTER.
struct Entry<'a> {
    qid: u16,
    header: Shared<'a>,
    payload: Shared<'a>,
    iov: Box<[libc::iovec; 2]>,
    /// Committed on behalf of a predecessor: a failure means the kernel no longer knows
    /// this entry, which is then registered afresh.
    recovering: bool,
}

impl<'a> Entry<'a> {
    fn new(qid: u16, header: Shared<'a>, payload: Shared<'a>) -> Entry<'a> {
        let iov = Box::new([
            libc::iovec {
                iov_base: header.addr().cast(),
                iov_len: HEADER_LEN,
            },
            libc::iovec {
                iov_base: payload.addr().cast(),
                iov_len: payload.size(),
            },
        ]);
        Entry {
            qid,
            header,
            payload,
            iov,
            recovering: false,
        }
    }

    /// The commit id the kernel gave the request it last put here.
    fn commit_id(&self) -> u64 {
        self.header.read_u64(ENT_COMMIT_ID).unwrap_or(0)
    }

    /// Whether the entry holds a request with no reply written yet: the in_out area has a
    /// fuse_in_header (an opcode where a reply's header has its error, 0 or negative).
    fn awaits_reply(&self) -> bool {
        self.header.read_u32(OPCODE).is_some_and(is_request_opcode)
    }
}

/// Where in_out holds a request's opcode, or a reply's error.
pub const OPCODE: usize = 4;

pub fn is_request_opcode(v: u32) -> bool {
    (1..=4096).contains(&v)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The 80-byte command of a FUSE uring SQE: struct fuse_uring_cmd_req.
fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

fn register_sqe(dev: BorrowedFd<'_>, e: &Entry, user_data: u64) -> squeue::Entry128 {
    let sqe = opcode::UringCmd80::new(types::Fd(dev.as_raw_fd()), CMD_REGISTER)
        .cmd(cmd_req(0, e.qid))
        .addr(Some(e.iov.as_ptr() as u64))
        .build()
        .user_data(user_data);
    with_len(sqe, 2)
}

/// The io-uring crate has no setter for the SQE's `len` (the iovec count of REGISTER).
fn with_len(sqe: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: Entry128 is #[repr(C)] and exactly 128 bytes (an io_uring_sqe and its
    // 64-byte command tail); `len` is the u32 at byte 24 of struct io_uring_sqe.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[24..28].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: every bit pattern is a valid Entry128 (plain integers and byte arrays).
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

fn commit_sqe(dev: BorrowedFd<'_>, commit_id: u64, qid: u16, user_data: u64) -> squeue::Entry128 {
    opcode::UringCmd80::new(types::Fd(dev.as_raw_fd()), CMD_COMMIT_AND_FETCH)
        .cmd(cmd_req(commit_id, qid))
        .build()
        .user_data(user_data)
}

pub fn pin(cpu: u32) {
    let mut set = CpuSet::new();
    if set.set(cpu as usize).is_ok()
        && let Err(e) = nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
    {
        warn!("pinning a worker to CPU {cpu}: {e}");
    }
}

/// Make the calling worker SCHED_BATCH, whose wakeups never preempt the running task.
/// A synchronous request costs nothing by it (its caller sleeps at once and the CPU turns
/// to us anyway); what changes is the asynchronous RELEASE of every close(): it no longer
/// switches the closing reader out and back, but is answered when the reader next waits,
/// and its commit fetches that next request with no wakeup. 8 -> 6 context switches per
/// open-read-close (BENCHMARKS.md). The price: a caller that does not wait (aio) is
/// answered when its CPU next switches tasks, within a scheduler slice.
fn batch_policy(cpu: u32) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        warn!(
            "worker on CPU {cpu}: SCHED_BATCH refused ({}); serving with the default policy",
            io::Error::last_os_error()
        );
    }
}

fn run_worker(
    s: &Arc<Session>,
    id: usize,
    cpu: u32,
    slots: &[(u16, usize)],
    nudge: Option<Arc<Recovery>>,
) -> io::Result<()> {
    pin(cpu);
    batch_policy(cpu);
    let fd = s.dev.as_fd();
    let arena = s
        .arena
        .get()
        .ok_or_else(|| io::Error::other("no ring arena"))?;
    let mut entries: Vec<Entry> = Vec::with_capacity(slots.len());
    for &(qid, slot) in slots {
        // SAFETY: spawn_workers gives every slot to exactly one worker.
        let (header, payload) = unsafe { arena.slot(slot) }
            .ok_or_else(|| io::Error::other("ring slot out of range"))?;
        entries.push(Entry::new(qid, header, payload));
    }
    // While frozen, a thaw wakes us through this eventfd: a READ of it into `wake` waits in
    // the ring. The buffer is leaked (8 bytes per worker, once per process) so that no
    // READ the ring still has in flight when it closes can write freed memory.
    let waker = s.freeze.waker()?;
    let wake: &'static mut [u8; 8] = Box::leak(Box::new([0; 8]));
    let mut ring = new_ring(entries.len() + 1)?;
    let mut w = Worker::new(id);
    let mut scratch = Scratch::new(arena.payload_len());
    let mut answered = 0;
    for (i, e) in entries.iter_mut().enumerate() {
        let sqe = if nudge.is_some() {
            // What the predecessor left here: a request it never answered (answer it
            // now), or a reply it wrote (commit it; the kernel refuses one it already has).
            e.recovering = true;
            let commit_id = if e.awaits_reply() {
                answered += 1;
                serve_entry(s, &mut w, e, &mut scratch).0
            } else {
                e.commit_id()
            };
            commit_sqe(fd, commit_id, e.qid, i as u64)
        } else {
            register_sqe(fd, e, i as u64)
        };
        push(&mut ring, sqe)?;
    }
    // While recovering, the first pass must not wait: a commit the kernel refuses fails at
    // once, and its entry must be registered afresh before the nudge, or the nudge would
    // queue with no entry armed and wait forever.
    let mut nudge = nudge;
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(entries.len());
    // Entries holding a request we do not answer while frozen (a handover is under way).
    let mut held: Vec<u64> = Vec::new();
    let mut retries = 0;
    let mut waiting_for_thaw = false;
    loop {
        let frozen = s.freeze.is_frozen();
        if frozen && !waiting_for_thaw {
            let read = opcode::Read::new(types::Fd(waker.as_raw_fd()), wake.as_mut_ptr(), 8);
            push(&mut ring, read.build().user_data(WAKE).into())?;
            waiting_for_thaw = true;
        }
        // Requests held by a freeze that has ended since are answered without waiting.
        let waited = if nudge.is_some() || (!frozen && !held.is_empty()) {
            ring.submit()
        } else {
            ring.submit_and_wait(1)
        };
        match waited {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        if !s.freeze.is_frozen() {
            done.extend(held.drain(..).map(|ud| (ud, 0)));
        }
        for &(ud, res) in &done {
            if ud == WAKE {
                waiting_for_thaw = false;
                continue;
            }
            let Some(e) = entries.get_mut(ud as usize) else {
                continue;
            };
            if std::mem::take(&mut e.recovering) && res < 0 {
                // The kernel does not know this entry (any more): make it a new one.
                debug!("CPU {cpu}: slot {ud} re-registered ({res})");
                push(&mut ring, register_sqe(fd, e, ud))?;
                continue;
            }
            if res == -libc::EAGAIN && retries < REGISTER_RETRIES {
                retries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
                push(&mut ring, register_sqe(fd, e, ud))?;
                continue;
            }
            if res < 0 {
                let err = io::Error::from_raw_os_error(-res);
                if matches!(-res, libc::ENOTCONN | libc::ENODEV | libc::ECANCELED) {
                    debug!("io_uring worker on CPU {cpu}: connection closed ({err})");
                    return Ok(());
                }
                return Err(err);
            }
            let Some(replying) = s.freeze.replying() else {
                held.push(ud);
                continue;
            };
            let (commit_id, fault) = serve_entry(s, &mut w, e, &mut scratch);
            if fault {
                // Stop with the reply written but not committed: the successor commits it.
                return Err(io::Error::other(super::supervise::injected()));
            }
            // Pushed under `replying`: a freeze that follows finds the commit queued, and
            // the next wait submits it.
            push(&mut ring, commit_sqe(fd, commit_id, e.qid, ud))?;
            drop(replying);
        }
        if let Some(recovery) = nudge.take() {
            ring.submit()?;
            info!("CPU {cpu}: answered {answered} requests the predecessor held");
            if recovery.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                nudge_queues(s, &recovery.mountpoint);
            }
        }
    }
}

/// A recovery under way: the workers that have not re-armed their entries yet.
struct Recovery {
    mountpoint: PathBuf,
    pending: AtomicUsize,
}

/// Once every entry is armed again, send one request through each CPU's queue: the kernel
/// hands requests that queued while no entry was armed only to an entry that commits, and
/// these requests' replies are such commits. From a helper process (fill.rs), never from a
/// thread of ours: a thread waiting on our own mount when this process is killed could only
/// be answered by this process, which then never finishes dying, so its pidfd never fires
/// and the keeper never starts a successor.
fn nudge_queues(s: &Arc<Session>, mountpoint: &Path) {
    let helper =
        std::env::current_exe().and_then(|exe| super::fill::spawn_helper(&exe, mountpoint, 1));
    match helper {
        Ok(mut child) => {
            // Reaped when its lookups are answered, here or, after an upgrade (which ends
            // this thread), by the new image.
            let pid = child.id();
            s.nudger.store(pid, Ordering::SeqCst);
            let s = s.clone();
            std::thread::spawn(move || {
                let _ = child.wait();
                let _ = s
                    .nudger
                    .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
            });
        }
        Err(e) => warn!(
            "cannot send a request through every CPU's queue ({e}): requests queued before \
             the recovery wait for the next one on their CPU"
        ),
    }
}

/// A worker's private copies of what its entries hold: requests are decoded and replies
/// rendered here, never in the shared arena (arena::Shared).
struct Scratch {
    header: [u8; HEADER_LEN],
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl Scratch {
    fn new(payload: usize) -> Scratch {
        Scratch {
            header: [0; HEADER_LEN],
            request: Vec::with_capacity(8192),
            reply: vec![0; payload],
        }
    }
}

/// Handle the request an entry holds and write its reply in place; returns the entry's
/// commit id, and whether the request is the test fault's trigger (supervise::fault_due).
fn serve_entry(s: &Session, w: &mut Worker, e: &mut Entry, scratch: &mut Scratch) -> (u64, bool) {
    let h = &mut scratch.header;
    e.header.read(0, h);
    let commit_id = u64_at(h, ENT_COMMIT_ID);
    let n = (u32_at(h, ENT_PAYLOAD_SZ) as usize).min(e.payload.size());
    scratch.request.resize(n, 0);
    e.payload.read(0, &mut scratch.request);
    let reply = &mut scratch.reply;
    reply.resize(e.payload.size(), 0);
    let (unique, answer, fault) =
        match proto::decode_ring(&h[..OP_IN], &h[OP_IN..ENT_IN_OUT], &scratch.request) {
            Ok(req) => {
                if super::supervise::slow_reply_due(&req) {
                    // serve_entry runs with the reply under way (`replying`).
                    super::supervise::stall();
                }
                (
                    req.header.unique,
                    s.handle(w, &req, reply),
                    super::supervise::fault_due(&req),
                )
            }
            Err(err) => {
                let unique = proto::decode_header(&h[..OP_IN])
                    .map(|h| h.unique)
                    .unwrap_or(0);
                warn!("malformed ring request: {err:?}");
                (unique, Reply::Error(libc::EIO), false)
            }
        };
    // Nothing over the ring goes unanswered: FORGET never travels here, but if it did,
    // the entry must still be committed to be re-armed.
    let answer = if answer == Reply::None {
        Reply::Error(libc::ENOSYS)
    } else {
        answer
    };
    let mut out = [0u8; abi::OUT_HEADER_LEN];
    let len = reply_header(&mut out, unique, answer).unwrap_or(abi::OUT_HEADER_LEN);
    let payload_len = len - abi::OUT_HEADER_LEN;
    e.payload.write(0, &reply[..payload_len]);
    e.header
        .write(ENT_PAYLOAD_SZ, &(payload_len as u32).to_ne_bytes());
    // The reply's header goes in last: a successor that finds it knows the payload and its
    // size are complete (awaits_reply).
    compiler_fence(Ordering::Release);
    e.header.write(0, &out);
    (commit_id, fault)
}

fn push(
    ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
    sqe: squeue::Entry128,
) -> io::Result<()> {
    loop {
        // SAFETY: every SQE we push points at memory that outlives the ring: the iovecs
        // owned by `entries` in run_worker (dropped after it returns), the arena (owned by
        // the session) and the leaked wake buffer.
        let pushed = unsafe { ring.submission().push(&sqe) };
        if pushed.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}
