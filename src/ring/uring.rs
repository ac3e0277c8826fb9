//! FUSE-over-io_uring (Linux 6.14+): the kernel hands each request to a ring entry of the
//! queue of the CPU the caller runs on. One worker thread per online CPU, pinned there,
//! serves that CPU's queue, so a request is answered without a cross-CPU wakeup.
//!
//! Each entry is a 288-byte header (fuse_uring_req_header: in_out, op_in, ent_in_out) and
//! a payload buffer registered once; a single COMMIT_AND_FETCH both answers a request and
//! re-arms the entry for the next.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use nix::sched::CpuSet;
use nix::unistd::Pid;

use super::{MAX_PAYLOAD, MAX_WRITE, Session, reply_header};
use crate::fs::{Reply, Worker};
use crate::proto::{self, abi};
use crate::{cpulist, debug, warn};

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// sizeof(struct fuse_uring_req_header) and the offsets inside it.
const HEADER_LEN: usize = 288;
const OP_IN: usize = 128;
const ENT_IN_OUT: usize = 256;
const ENT_COMMIT_ID: usize = ENT_IN_OUT + 8;
const ENT_PAYLOAD_SZ: usize = ENT_IN_OUT + 16;

/// Ring entries per queue: requests one CPU can have in flight at once.
const DEPTH: usize = 8;
/// How long to keep retrying a REGISTER the kernel answers EAGAIN (INIT not yet done).
const REGISTER_RETRIES: u32 = 1000;

/// Start one pinned worker per online CPU. Every possible CPU's queue gets entries (the
/// kernel uses the ring only once all have some); queues of offline CPUs are served by
/// the online workers in turn.
pub fn start(s: Arc<Session>) -> io::Result<usize> {
    let possible = cpulist::read(c"/sys/devices/system/cpu/possible")?;
    let online = cpulist::read(c"/sys/devices/system/cpu/online")?;
    if online.is_empty() {
        return Err(io::Error::other("no online CPU"));
    }
    let mut queues: Vec<Vec<u16>> = vec![Vec::new(); online.len()];
    let mut spill = 0;
    for &cpu in &possible {
        let qid = u16::try_from(cpu).map_err(|_| io::Error::other("CPU id out of range"))?;
        let slot = match online.iter().position(|&c| c == cpu) {
            Some(i) => i,
            None => {
                spill += 1;
                spill % online.len()
            }
        };
        queues[slot].push(qid);
    }
    let payload_len = MAX_PAYLOAD.max(8192).max(MAX_WRITE as usize);
    for (i, (&cpu, qids)) in online.iter().zip(queues).enumerate() {
        let s = s.clone();
        std::thread::Builder::new()
            .name(format!("uring-{cpu}"))
            .spawn(move || {
                if let Err(e) = run_worker(&s, i + 1, cpu, &qids, payload_len) {
                    warn!("io_uring worker on CPU {cpu} stopped: {e}");
                }
            })?;
    }
    Ok(online.len())
}

/// The memory of one ring entry. The kernel keeps the addresses from REGISTER, so these
/// buffers never move or drop while the worker runs.
struct Entry {
    qid: u16,
    header: Box<[u8; HEADER_LEN]>,
    payload: Box<[u8]>,
    iov: Box<[libc::iovec; 2]>,
}

impl Entry {
    fn new(qid: u16, payload_len: usize) -> Entry {
        let mut header = Box::new([0u8; HEADER_LEN]);
        let mut payload = vec![0u8; payload_len].into_boxed_slice();
        let iov = Box::new([
            libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: HEADER_LEN,
            },
            libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload_len,
            },
        ]);
        Entry {
            qid,
            header,
            payload,
            iov,
        }
    }
}

/// The 80-byte command of a FUSE uring SQE: struct fuse_uring_cmd_req.
fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

fn register_sqe(fd: RawFd, e: &Entry, user_data: u64) -> squeue::Entry128 {
    let sqe = opcode::UringCmd80::new(types::Fd(fd), CMD_REGISTER)
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

fn commit_sqe(fd: RawFd, commit_id: u64, qid: u16, user_data: u64) -> squeue::Entry128 {
    opcode::UringCmd80::new(types::Fd(fd), CMD_COMMIT_AND_FETCH)
        .cmd(cmd_req(commit_id, qid))
        .build()
        .user_data(user_data)
}

fn pin(cpu: u32) {
    let mut set = CpuSet::new();
    if set.set(cpu as usize).is_ok()
        && let Err(e) = nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
    {
        warn!("pinning a worker to CPU {cpu}: {e}");
    }
}

fn run_worker(
    s: &Session,
    id: usize,
    cpu: u32,
    qids: &[u16],
    payload_len: usize,
) -> io::Result<()> {
    pin(cpu);
    let fd = s.dev.as_raw_fd();
    let mut entries: Vec<Entry> = qids
        .iter()
        .flat_map(|&q| (0..DEPTH).map(move |_| q))
        .map(|q| Entry::new(q, payload_len))
        .collect();
    let size = entries.len().next_power_of_two() as u32;
    let mut ring: IoUring<squeue::Entry128, cqueue::Entry> = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_defer_taskrun()
        .build(size)?;
    for (i, e) in entries.iter().enumerate() {
        push(&mut ring, register_sqe(fd, e, i as u64))?;
    }
    let mut w = Worker::new(id);
    let mut request_payload: Vec<u8> = Vec::with_capacity(8192);
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(entries.len());
    let mut retries = 0;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            let Some(e) = entries.get_mut(ud as usize) else {
                continue;
            };
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
            let commit_id = serve_entry(s, &mut w, e, &mut request_payload);
            push(&mut ring, commit_sqe(fd, commit_id, e.qid, ud))?;
        }
    }
}

/// Handle the request an entry holds and write its reply in place; returns the entry's
/// commit id.
fn serve_entry(s: &Session, w: &mut Worker, e: &mut Entry, request_payload: &mut Vec<u8>) -> u64 {
    let h = &e.header;
    let commit_id = u64::from_ne_bytes(
        h[ENT_COMMIT_ID..ENT_COMMIT_ID + 8]
            .try_into()
            .unwrap_or_default(),
    );
    let payload_sz = u32::from_ne_bytes(
        h[ENT_PAYLOAD_SZ..ENT_PAYLOAD_SZ + 4]
            .try_into()
            .unwrap_or_default(),
    );
    // The request's own payload (a name, write data) is copied out so the reply can be
    // written over the same buffer.
    let n = (payload_sz as usize).min(e.payload.len());
    request_payload.clear();
    request_payload.extend_from_slice(&e.payload[..n]);
    let (unique, reply) =
        match proto::decode_ring(&h[..OP_IN], &h[OP_IN..ENT_IN_OUT], request_payload) {
            Ok(req) => (req.header.unique, s.handle(w, &req, &mut e.payload)),
            Err(err) => {
                let unique = proto::decode_header(&h[..OP_IN])
                    .map(|h| h.unique)
                    .unwrap_or(0);
                warn!("malformed ring request: {err:?}");
                (unique, Reply::Error(libc::EIO))
            }
        };
    // Nothing over the ring goes unanswered: FORGET never travels here, but if it did,
    // the entry must still be committed to be re-armed.
    let reply = if reply == Reply::None {
        Reply::Error(libc::ENOSYS)
    } else {
        reply
    };
    let len = reply_header(&mut e.header[..abi::OUT_HEADER_LEN], unique, reply)
        .unwrap_or(abi::OUT_HEADER_LEN);
    let payload_len = (len - abi::OUT_HEADER_LEN) as u32;
    e.header[ENT_PAYLOAD_SZ..ENT_PAYLOAD_SZ + 4].copy_from_slice(&payload_len.to_ne_bytes());
    commit_id
}

fn push(
    ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
    sqe: squeue::Entry128,
) -> io::Result<()> {
    loop {
        // SAFETY: every SQE we push points at buffers owned by `entries` in run_worker,
        // which outlive the ring (they are dropped after it returns).
        let pushed = unsafe { ring.submission().push(&sqe) };
        if pushed.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}
