//! The classic transport: blocking read(2) and write(2) on /dev/fuse, one worker thread
//! per cloned file.
//!
//! Measured against io_uring READ/WRITE on /dev/fuse (which the kernel punts to io-wq
//! threads because /dev/fuse has no FMODE_NOWAIT), plain blocking calls were faster; see
//! BENCHMARKS.md.

use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::{MAX_WRITE, Session, reply_header, supervise};
use crate::fs::{Reply, Worker};
use crate::proto::{self, abi};
use crate::{debug, warn};

/// read(2) on /dev/fuse needs room for the largest request: max(8192, 80 + max_write).
const IN_BUF: usize = 8192 + MAX_WRITE as usize;

/// What a read of /dev/fuse said.
enum Next {
    Request(usize),
    Retry,
    /// The connection is over (unmounted, aborted): Ok, or why this worker failed.
    Stop(Result<(), String>),
}

fn read_request(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Next {
    match nix::unistd::read(fd, buf) {
        Ok(n) => Next::Request(n),
        // Interrupted, or the request was aborted before we read it.
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::ENOENT | nix::errno::Errno::EAGAIN) => {
            Next::Retry
        }
        // Unmounted (ENODEV) or aborted (ECONNABORTED): the connection is over.
        Err(nix::errno::Errno::ENODEV | nix::errno::Errno::ECONNABORTED) => Next::Stop(Ok(())),
        Err(e) => Next::Stop(Err(format!("reading /dev/fuse: {e}"))),
    }
}

/// Decode, handle and answer one request read from `fd`. Break when the worker stops:
/// Ok when the connection ended, else why it failed.
fn serve_one(
    s: &Session,
    w: &mut Worker,
    fd: BorrowedFd<'_>,
    input: &[u8],
    out: &mut [u8],
) -> ControlFlow<Result<(), String>> {
    // Before handling, as the io_uring workers do: a request the kernel resends to the
    // successor must have had no effect here (a RELEASE counted twice would uncount a
    // backing file the kernel still holds, fs::backing).
    let Some(_replying) = s.freeze.replying() else {
        // Handing over: this request stays unanswered in our fd's queue and the kernel
        // resends it to the successor. Wait here until the process image is replaced (or
        // the upgrade is abandoned, and the request resent to us).
        s.freeze.wait_thawed();
        return ControlFlow::Continue(());
    };
    let (hdr, payload) = out.split_at_mut(abi::OUT_HEADER_LEN);
    let (unique, reply, fault, slow) = match proto::decode(input) {
        Ok(req) => (
            req.header.unique,
            s.handle(w, &req, payload),
            supervise::fault_due(&req),
            supervise::slow_reply_due(&req),
        ),
        Err(e) => match proto::decode_header(input) {
            Ok(h) => {
                warn!("malformed request (opcode {}): {e:?}", h.opcode);
                (h.unique, Reply::Error(libc::EIO), false, false)
            }
            Err(_) => {
                warn!("unreadable request of {} bytes dropped", input.len());
                return ControlFlow::Continue(());
            }
        },
    };
    let Some(len) = reply_header(hdr, unique, reply) else {
        return ControlFlow::Continue(());
    };
    if slow {
        supervise::stall();
    }
    match nix::unistd::write(fd, &out[..len]) {
        Ok(_) if fault => ControlFlow::Break(Err(supervise::injected())),
        Ok(_) => ControlFlow::Continue(()),
        // The request was interrupted and is gone; nothing to do.
        Err(nix::errno::Errno::ENOENT) => ControlFlow::Continue(()),
        Err(nix::errno::Errno::ENODEV | nix::errno::Errno::ECONNABORTED) => {
            ControlFlow::Break(Ok(()))
        }
        Err(e) => {
            debug!("writing a reply: {e}");
            ControlFlow::Continue(())
        }
    }
}

/// A classic worker loop on `fd` until the connection ends (Ok) or the worker fails.
fn serve_fd(
    s: &Session,
    w: &mut Worker,
    fd: BorrowedFd<'_>,
    mut on_request: impl FnMut(),
) -> Result<(), String> {
    let mut input = vec![0u8; IN_BUF];
    let mut out = Vec::new();
    loop {
        // Sized once INIT is known (the reader of the original file answers it first).
        let room = abi::OUT_HEADER_LEN + s.payload_capacity();
        if out.len() < room {
            out.resize(room, 0);
        }
        let n = match read_request(fd, &mut input) {
            Next::Request(n) => n,
            Next::Retry => continue,
            Next::Stop(why) => return why,
        };
        if let ControlFlow::Break(why) = serve_one(s, w, fd, &input[..n], &mut out) {
            return why;
        }
        on_request();
    }
}

/// The reader of the original /dev/fuse file: answers INIT, then calls `after_init` once,
/// and keeps serving whatever the kernel sends there (FORGET and INTERRUPT on the ring
/// transport, everything on the classic one). A resumed session has had INIT already.
pub fn run_main(s: &Arc<Session>, after_init: fn(&Arc<Session>)) {
    let mut w = Worker::new(0);
    let mut started = s.init().is_some();
    supervise::run(s, &[], "the /dev/fuse reader", || {
        serve_fd(s, &mut w, s.dev.as_fd(), || {
            if !started && s.init().is_some() {
                started = true;
                after_init(s);
            }
        })
    });
}

/// Start the other classic workers, each on a clone of the connection. Returns how many
/// started.
pub fn start_clones(s: Arc<Session>) -> usize {
    let mut fds = Vec::new();
    for id in 1..s.threads {
        match crate::mount::clone_dev(s.dev.as_fd()) {
            Ok(fd) => fds.push(fd),
            Err(e) => {
                warn!("cloning /dev/fuse for worker {id}: {e}");
                break;
            }
        }
    }
    start_workers(s, fds)
}

/// Start one classic worker on each of `fds` (clones of the connection). Returns how many
/// started.
pub fn start_workers(s: Arc<Session>, fds: Vec<OwnedFd>) -> usize {
    let mut started = 0;
    for (i, fd) in fds.into_iter().enumerate() {
        let id = i + 1;
        let fd = Arc::new(fd);
        s.clones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fd.clone());
        let s = s.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fuse-{id}"))
            .spawn(move || {
                let mut w = Worker::new(id);
                supervise::run(&s, &[], &format!("classic worker {id}"), || {
                    serve_fd(&s, &mut w, fd.as_fd(), || {})
                });
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => warn!("starting worker {id}: {e}"),
        }
    }
    started
}
