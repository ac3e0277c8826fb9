//! The memory of the io_uring ring entries: one memfd, mapped at the same address in every
//! process that serves the connection.
//!
//! The kernel remembers each entry's buffers as addresses, and reads a reply from them in
//! the address space of whoever commits it. A successor (after a crash, an exec, a
//! takeover) that maps the same memfd at the same address therefore sees the requests the
//! kernel handed to its predecessor's entries, and can answer them: nothing in flight is
//! lost (see uring::recover).

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

/// Where the first process asks for the mapping: far from the heap, the libraries and the
/// stack, so a successor's fresh address space has it free too. Elsewhere when taken.
const PREFERRED_ADDR: usize = 0x2000_0000_0000;

/// Room for one entry's 288-byte header, rounded to a page so payloads are page-aligned.
pub const HEADER_ROOM: usize = 4096;

pub struct Arena {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
    slot_len: usize,
    /// Entries per CPU queue: slots k*depth..(k+1)*depth serve the k-th possible CPU.
    depth: usize,
}

// SAFETY: the mapping lives as long as the Arena and is shared memory; which thread uses
// which slot is decided by the workers (each owns disjoint slots), see `slot`.
unsafe impl Send for Arena {}
// SAFETY: as above: the Arena itself is never written through &self.
unsafe impl Sync for Arena {}

impl Arena {
    /// A new arena of `depth` entries for each of `queues` queues, with `payload_len`-byte
    /// payloads.
    pub fn create(queues: usize, depth: usize, payload_len: usize) -> io::Result<Arena> {
        let slot_len = HEADER_ROOM + payload_len.next_multiple_of(4096);
        let len = queues
            .checked_mul(depth)
            .and_then(|n| n.checked_mul(slot_len))
            .ok_or_else(|| io::Error::other("ring arena too large"))?;
        let fd = nix::sys::memfd::memfd_create(
            c"lxcfs-uring-ring",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, len as libc::off_t)?;
        let base = map(fd.as_fd(), PREFERRED_ADDR, len, true)
            .or_else(|_| map(fd.as_fd(), 0, len, false))?;
        Ok(Arena {
            fd,
            base,
            len,
            slot_len,
            depth,
        })
    }

    /// The arena a predecessor created (as `describe` put it), mapped at the address it had
    /// there.
    pub fn adopt(fd: OwnedFd, desc: &str) -> io::Result<Arena> {
        let bad = || io::Error::other(format!("a malformed ring arena description: {desc}"));
        let mut parts = desc.split(':').map(str::parse::<usize>);
        let mut next = || parts.next().and_then(Result::ok).ok_or_else(bad);
        let (addr, len, slot_len, depth) = (next()?, next()?, next()?, next()?);
        let size = nix::sys::stat::fstat(&fd)?.st_size;
        if size != len as libc::off_t
            || slot_len < HEADER_ROOM
            || depth == 0
            || !len.is_multiple_of(slot_len)
        {
            return Err(io::Error::other(
                "the ring arena does not match its description",
            ));
        }
        let base = map(fd.as_fd(), addr, len, true)
            .map_err(|e| io::Error::new(e.kind(), format!("mapping it at {addr:#x}: {e}")))?;
        Ok(Arena {
            fd,
            base,
            len,
            slot_len,
            depth,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `addr:len:slot_len:depth`, as `adopt` takes them back.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.base.as_ptr() as usize,
            self.len,
            self.slot_len,
            self.depth
        )
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn slots(&self) -> usize {
        self.len / self.slot_len
    }

    pub fn payload_len(&self) -> usize {
        self.slot_len - HEADER_ROOM
    }

    /// The header and payload of slot `i`.
    ///
    /// # Safety
    /// The caller must be this process's only user of slot `i` while the `Shared`s live
    /// (each worker owns a disjoint set of slots); the kernel, which writes a request into
    /// an entry only while it is armed and reads a reply only at its commit, and `peek_u32`
    /// aside.
    pub unsafe fn slot(&self, i: usize) -> Option<(Shared<'_>, Shared<'_>)> {
        if i >= self.slots() {
            return None;
        }
        // SAFETY: slot i lies inside the mapping (checked above), so both stretches do.
        let (header, payload) = unsafe {
            let start = self.base.as_ptr().add(i * self.slot_len);
            (start, start.add(HEADER_ROOM))
        };
        Some((
            Shared::new(header, HEADER_ROOM),
            Shared::new(payload, self.payload_len()),
        ))
    }

    /// The u32 at `offset` of slot `i`'s header, read without claiming the slot (the
    /// kernel or its owner may be writing it).
    pub fn peek_u32(&self, i: usize, offset: usize) -> Option<u32> {
        if i >= self.slots() || offset + 4 > HEADER_ROOM {
            return None;
        }
        // SAFETY: slot i's header lies inside the mapping (checked above); it is only
        // read, with volatile reads, so its owner and the kernel may write it meanwhile.
        let header = Shared::new(
            unsafe { self.base.as_ptr().add(i * self.slot_len) },
            HEADER_ROOM,
        );
        header.read_u32(offset)
    }
}

/// A stretch of the arena: memory that the kernel, and the other processes serving the
/// connection, read and write too. It is never lent as `&` or `&mut` (which would promise
/// the compiler that nobody else writes it): bytes are copied in and out through its raw
/// pointer, and reads are volatile, since another writer may be at work.
/// It borrows its Arena, whose Drop unmaps the memory.
pub struct Shared<'a> {
    ptr: NonNull<u8>,
    len: usize,
    arena: PhantomData<&'a Arena>,
}

// SAFETY: a pointer into the shared mapping, which outlives every Shared (each borrows its
// Arena); one thread uses each (Arena::slot's contract).
unsafe impl Send for Shared<'_> {}

impl Shared<'_> {
    fn new(ptr: *mut u8, len: usize) -> Self {
        Shared {
            ptr: NonNull::new(ptr).unwrap_or(NonNull::dangling()),
            len,
            arena: PhantomData,
        }
    }

    /// How many bytes it has.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The address the kernel is given for this memory (a REGISTER's iovec).
    pub fn addr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copy the bytes at `at` into `out`; false (and nothing copied) past the end.
    pub fn read(&self, at: usize, out: &mut [u8]) -> bool {
        if at.checked_add(out.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: at + i < len (checked above), inside the mapping; a volatile read
            // of a byte another writer may change.
            *b = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(at + i)) };
        }
        true
    }

    pub fn read_u32(&self, at: usize) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(at, &mut b).then(|| u32::from_ne_bytes(b))
    }

    pub fn read_u64(&self, at: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(at, &mut b).then(|| u64::from_ne_bytes(b))
    }

    /// Copy `src` to `at`; false (and nothing copied) past the end. Only while this
    /// process owns the memory (Arena::slot), which nobody else writes meanwhile: the
    /// kernel reads it at the commit, a syscall after this.
    pub fn write(&mut self, at: usize, src: &[u8]) -> bool {
        if at.checked_add(src.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: at + src.len() <= len (checked above), inside the mapping; `src` is
        // private memory, so the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(at), src.len());
        }
        true
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no slice of it outlives the Arena (workers
        // hold an Arc of the session that owns it).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// Map `len` bytes of `fd` shared, at `addr` exactly when `fixed` (never over an existing
/// mapping), else wherever the kernel likes.
fn map(fd: BorrowedFd<'_>, addr: usize, len: usize, fixed: bool) -> io::Result<NonNull<u8>> {
    let flags = libc::MAP_SHARED | if fixed { libc::MAP_FIXED_NOREPLACE } else { 0 };
    // SAFETY: a new shared mapping of our memfd; MAP_FIXED_NOREPLACE never replaces an
    // existing mapping, so no memory of ours changes under us.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if fixed && p as usize != addr {
        // An old kernel without MAP_FIXED_NOREPLACE treats it as a hint.
        // SAFETY: we just mapped it and nothing refers to it.
        unsafe { libc::munmap(p, len) };
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_their_description() {
        let a = Arena::create(2, 3, 5000).unwrap();
        assert_eq!((a.slots(), a.depth(), a.payload_len()), (6, 3, 8192));
        let desc = a.describe();
        let parts: Vec<usize> = desc.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!(
            parts[1..],
            [6 * (HEADER_ROOM + 8192), HEADER_ROOM + 8192, 3]
        );
        // SAFETY: this test is the slot's only user.
        let (mut header, mut payload) = unsafe { a.slot(5) }.unwrap();
        assert!(header.write(4, &7u32.to_ne_bytes()));
        assert!(payload.write(8190, &[1, 2]));
        assert_eq!(a.peek_u32(5, 4), Some(7));
        assert_eq!(
            payload.read_u64(8184),
            Some(u64::from_ne_bytes([0, 0, 0, 0, 0, 0, 1, 2]))
        );
        // Nothing is copied past a stretch's end.
        assert!(!payload.write(8191, &[1, 2]) && payload.read_u32(8190).is_none());
        assert!(!header.write(usize::MAX, &[1]) && !header.read(HEADER_ROOM, &mut [0]));
        assert_eq!(
            payload.read_u32(8188),
            Some(u32::from_ne_bytes([0, 0, 1, 2]))
        );
        assert!(unsafe { a.slot(6) }.is_none() && a.peek_u32(6, 0).is_none());
        // A description that does not fit the memfd is refused, before anything is mapped.
        for bad in ["1:2", "x:1:2:3", &desc.replace(":3", ":0")] {
            let fd = a.fd().try_clone_to_owned().unwrap();
            assert!(Arena::adopt(fd, bad).is_err(), "{bad}");
        }
        // Where the arena is already mapped, a second mapping is refused, not stacked.
        let fd = a.fd().try_clone_to_owned().unwrap();
        assert!(Arena::adopt(fd, &desc).is_err());
    }
}
