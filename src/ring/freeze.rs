//! Freezing the workers before a handover, by acknowledgement. A worker answers a request
//! only inside `replying`, which it enters after checking that no freeze is under way;
//! `freeze` returns once every worker that got past that check has finished its reply, so
//! from then on no new reply is made. Replies made before may still leave: an io_uring
//! worker's commits pushed under `replying` are submitted at its next wait. `thaw` wakes
//! the workers holding requests: classic ones wait on a condition variable, io_uring ones
//! in their ring, on an eventfd of their own (they must stay in the ring: the kernel
//! copies a request into an entry only while its worker waits there).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a freeze waits for replies under way; past it the handover is called off (a
/// reply cannot take that long unless its worker is stuck, and then handing over would not
/// free it).
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Freeze {
    frozen: AtomicBool,
    /// Workers past their frozen check whose reply is not written yet.
    replying: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
    /// The eventfds io_uring workers wait on while frozen.
    wakers: Mutex<Vec<Arc<OwnedFd>>>,
}

/// A reply under way: the worker may answer while it holds one.
pub struct Replying<'a>(&'a Freeze);

impl Drop for Replying<'_> {
    fn drop(&mut self) {
        // SeqCst pairs with `freeze`: either it sees this reply done, or this sees it frozen
        // and wakes it.
        if self.0.replying.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.is_frozen() {
            let _g = self.0.locked();
            self.0.changed.notify_all();
        }
    }
}

impl Freeze {
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    fn locked(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker about to answer a request: leave to answer while the guard lives, or None
    /// when frozen (the request is held back for the successor).
    pub fn replying(&self) -> Option<Replying<'_>> {
        self.replying.fetch_add(1, Ordering::SeqCst);
        let guard = Replying(self);
        (!self.is_frozen()).then_some(guard)
    }

    /// Stop answering: returns once no reply is under way. An error when one does not end
    /// within REPLY_TIMEOUT; the freeze stays on then, for the caller to call off with the
    /// thaw that also has the kernel resend the requests held meanwhile (upgrade.rs).
    pub fn freeze(&self) -> io::Result<()> {
        self.frozen.store(true, Ordering::SeqCst);
        let g = self.locked();
        let (_g, waited) = self
            .changed
            .wait_timeout_while(g, REPLY_TIMEOUT, |_| {
                self.replying.load(Ordering::SeqCst) != 0
            })
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() {
            return Err(io::Error::other("a worker is still answering a request"));
        }
        Ok(())
    }

    /// Answer again, waking every worker that holds a request.
    pub fn thaw(&self) {
        {
            let _g = self.locked();
            self.frozen.store(false, Ordering::SeqCst);
            self.changed.notify_all();
        }
        for w in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // The count only grows: a worker not waiting yet finds it and goes on.
            let _ = nix::unistd::write(w.as_fd(), &1u64.to_ne_bytes());
        }
    }

    /// Block a classic worker that holds a request until the freeze ends (or the process
    /// image is replaced).
    pub fn wait_thawed(&self) {
        let g = self.locked();
        let _g = self
            .changed
            .wait_while(g, |_| self.is_frozen())
            .unwrap_or_else(|e| e.into_inner());
    }

    /// A new eventfd that `thaw` writes to, for an io_uring worker to wait on in its ring.
    pub fn waker(&self) -> io::Result<Arc<OwnedFd>> {
        let fd = Arc::new(OwnedFd::from(nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC,
        )?));
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fd.clone());
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_waits_for_the_reply_under_way_and_holds_the_next() {
        let f = Arc::new(Freeze::default());
        let reply = f.replying().expect("not frozen");
        let freezer = std::thread::spawn({
            let f = f.clone();
            move || f.freeze()
        });
        // The freeze is under way but cannot end while the reply is.
        while !f.is_frozen() {
            std::thread::yield_now();
        }
        assert!(!freezer.is_finished());
        assert!(f.replying().is_none(), "a new reply is held back");
        drop(reply);
        freezer.join().unwrap().unwrap();
        let classic = std::thread::spawn({
            let f = f.clone();
            move || f.wait_thawed()
        });
        let waker = f.waker().unwrap();
        f.thaw();
        classic.join().unwrap();
        let mut count = [0u8; 8];
        assert_eq!(nix::unistd::read(waker.as_fd(), &mut count), Ok(8));
        assert_eq!(u64::from_ne_bytes(count), 1);
        assert!(f.replying().is_some());
    }

    #[test]
    fn a_reply_that_does_not_end_fails_the_freeze_and_leaves_the_thaw_to_the_caller() {
        let f = Freeze::default();
        let _stuck = f.replying().unwrap();
        assert!(f.freeze().is_err());
        // Thawing here would wake held workers with no resend: their requests would hang.
        assert!(f.is_frozen(), "held until the caller's thaw");
        f.thaw();
        assert!(!f.is_frozen(), "serving on");
    }
}
