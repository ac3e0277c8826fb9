//! Capabilities, where a file the daemon opens must carry a caller's: the kernel judges
//! some writes by the capabilities of whoever opened the file (PSI triggers: a window
//! that is not a multiple of 2 s, and the real-time poller thread behind it, need
//! CAP_SYS_RESOURCE in the opener's effective set).

use std::io;

use crate::kfile::{self, ProcPath};

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
pub const CAP_SYS_RESOURCE: u32 = 24;

/// Whether the effective set in `status` (the text of /proc/<pid>/status) holds `cap`.
pub fn effective_has(status: &[u8], cap: u32) -> bool {
    kfile::lines(status)
        .find_map(|l| l.strip_prefix(b"CapEff:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|set| cap < 64 && set & (1 << cap) != 0)
}

/// Whether process `pid` (in our pid namespace) has `cap` in its effective set; false
/// when that cannot be read (a process gone: the safe side).
pub fn process_has(pid: u32, cap: u32, scratch: &mut Vec<u8>) -> bool {
    kfile::read_path(ProcPath::new(pid, "status").as_cstr(), scratch)
        .is_ok_and(|()| effective_has(scratch, cap))
}

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's capability sets (pid 0: the calling thread; capabilities are per thread).
fn get() -> io::Result<[Data; 2]> {
    let mut h = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget with version 3 writes two Data structs at the second pointer.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d)
}

fn set(d: &[Data; 2]) -> io::Result<()> {
    let mut h = Header {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset with version 3 reads two Data structs at the second pointer.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` (an open) with `cap` out of this thread's effective set, then put it back:
/// the file opened carries the credentials of a caller without it.
pub fn without<R>(cap: u32, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    let saved = get()?;
    let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
    if word >= saved.len() || saved[word].effective & bit == 0 {
        return f();
    }
    let mut less = saved;
    less[word].effective &= !bit;
    set(&less)?;
    let r = f();
    // Raising it again cannot fail: it stays in the permitted set.
    if let Err(e) = set(&saved) {
        crate::warn!("cannot restore this thread's capabilities ({e})");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_set_from_status() {
        let status = b"Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t0000000001000000\n";
        assert!(effective_has(status, 24));
        assert!(!effective_has(status, 21));
        assert!(!effective_has(status, 99));
        assert!(!effective_has(b"CapEff:\tzz\n", 24));
        assert!(!effective_has(b"", 24));
    }

    #[test]
    fn without_drops_the_capability_for_the_call_only() {
        // On a thread of its own: capabilities are per thread.
        std::thread::spawn(|| {
            let before = get().unwrap();
            let cap = CAP_SYS_RESOURCE;
            let inside = without(cap, get).unwrap();
            assert_eq!(inside[0].effective & (1 << cap), 0);
            assert_eq!(
                inside[0].effective | (before[0].effective & (1 << cap)),
                before[0].effective,
                "nothing else dropped"
            );
            assert_eq!(get().unwrap()[0].effective, before[0].effective, "put back");
        })
        .join()
        .unwrap();
    }
}
