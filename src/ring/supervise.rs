//! Supervision of the transport's workers. A worker serves one CPU's queue (io_uring) or
//! one /dev/fuse file (classic): if it stopped while the process went on, what the kernel
//! routes to it would wait forever, while the keeper, which watches only the pid, saw a
//! healthy server. So a worker that stops for any reason but the end of the connection
//! ends the process at once, and the keeper's successor takes the connection over with
//! whatever the worker held (keeper.rs).

use std::ffi::OsString;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::Duration;

use super::Session;
use crate::proto::{Op, Request};
use crate::{debug, warn};

/// The exit status of a process a failed worker ended (EX_SOFTWARE).
pub const EXIT_WORKER_FAILED: i32 = 70;

/// For the tests only: the worker that answers a LOOKUP of this name then stops as if its
/// transport had failed (tests/upgrade.rs). Read once; unset in any real deployment.
pub const FAULT_ENV: &str = "LXCFS_URING_TEST_WORKER_FAULT";
/// For the tests only: the reply to a LOOKUP of this name takes `SLOW_REPLY`, its worker
/// counted as answering all along, so a freeze meanwhile is called off (tests/upgrade.rs).
pub const SLOW_REPLY_ENV: &str = "LXCFS_URING_TEST_SLOW_REPLY";
/// Longer than the freeze waits for a reply under way (freeze.rs).
const SLOW_REPLY: Duration = Duration::from_millis(1500);

/// Run the loop of the worker `name`. Ok means the connection ended (an unmount, an
/// abort): the worker stops quietly. An error or a panic ends the process, once
/// `fill::before_failed_exit` has kept what `s` holds for the successor (`own`: the
/// worker's ring slots).
pub fn run(s: &Session, own: &[usize], name: &str, body: impl FnOnce() -> Result<(), String>) {
    let why = match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            debug!("{name}: the connection ended");
            return;
        }
        Ok(Err(why)) => why,
        Err(panic) => format!("it panicked: {}", panic_text(panic.as_ref())),
    };
    warn!(
        "{name} stopped outside shutdown ({why}): exiting so that the keeper's successor \
         serves what it held"
    );
    super::fill::before_failed_exit(s, own);
    std::process::exit(EXIT_WORKER_FAILED);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Whether `req` is the test fault's trigger (FAULT_ENV): its worker stops once it has
/// written the reply, so the successor only has to deliver it.
pub fn fault_due(req: &Request<'_>) -> bool {
    static NAME: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    looks_up(req, &NAME, FAULT_ENV)
}

/// Whether the reply to `req` is to be slow (SLOW_REPLY_ENV); `stall` makes it so.
pub fn slow_reply_due(req: &Request<'_>) -> bool {
    static NAME: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    looks_up(req, &NAME, SLOW_REPLY_ENV)
}

/// The slow reply's wait, made by a worker while it holds its reply under way.
pub fn stall() {
    warn!("a slow reply injected through {SLOW_REPLY_ENV}");
    std::thread::sleep(SLOW_REPLY);
}

/// Whether `req` is a LOOKUP of the name in the environment variable `env` (read once).
fn looks_up(req: &Request<'_>, name: &OnceLock<Option<Vec<u8>>>, env: &str) -> bool {
    let Op::Lookup { name: looked_up } = req.op else {
        return false;
    };
    name.get_or_init(|| std::env::var_os(env).map(OsString::into_encoded_bytes))
        .as_deref()
        == Some(looked_up)
}

/// The error of a worker that stopped for the test fault.
pub fn injected() -> String {
    format!("a fault injected through {FAULT_ENV}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_text() {
        let fixed: Box<dyn std::any::Any + Send> = Box::new("fixed");
        let formatted: Box<dyn std::any::Any + Send> = Box::new(String::from("formatted 7"));
        let other: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_text(fixed.as_ref()), "fixed");
        assert_eq!(panic_text(formatted.as_ref()), "formatted 7");
        assert_eq!(panic_text(other.as_ref()), "no message");
    }
}
