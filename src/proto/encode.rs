//! Reply encoding into a caller-owned buffer (a /dev/fuse write buffer after its
//! header, or a ring entry's payload). Nothing here allocates.

use super::abi::{self, out_size};
use super::decode::InitIn;

/// The buffer was too small for the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// A cursor writing native-endian fields into a byte slice.
pub struct OutBuf<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OutBuf<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        OutBuf { buf, pos: 0 }
    }

    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Overflow> {
        let dst = self
            .buf
            .get_mut(self.pos..self.pos + b.len())
            .ok_or(Overflow)?;
        dst.copy_from_slice(b);
        self.pos += b.len();
        Ok(())
    }

    pub fn u16(&mut self, v: u16) -> Result<(), Overflow> {
        self.bytes(&v.to_ne_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<(), Overflow> {
        self.bytes(&v.to_ne_bytes())
    }

    pub fn u64(&mut self, v: u64) -> Result<(), Overflow> {
        self.bytes(&v.to_ne_bytes())
    }

    pub fn zeros(&mut self, n: usize) -> Result<(), Overflow> {
        let dst = self.buf.get_mut(self.pos..self.pos + n).ok_or(Overflow)?;
        dst.fill(0);
        self.pos += n;
        Ok(())
    }
}

/// Write a `fuse_out_header` into the first 16 bytes of `buf`.
pub fn out_header(buf: &mut [u8], len: u32, error: i32, unique: u64) -> Result<(), Overflow> {
    let mut o = OutBuf::new(buf);
    o.u32(len)?;
    o.u32(error as u32)?;
    o.u64(unique)
}

/// `fuse_attr`: what GETATTR, LOOKUP and READDIRPLUS report for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, used for atime, mtime and ctime.
    pub time: u64,
}

impl Attr {
    fn encode(&self, o: &mut OutBuf<'_>) -> Result<(), Overflow> {
        o.u64(self.ino)?;
        o.u64(self.size)?;
        o.u64(self.size.div_ceil(512))?; // blocks
        for _ in 0..3 {
            o.u64(self.time)?; // atime, mtime, ctime
        }
        o.zeros(12)?; // atimensec, mtimensec, ctimensec
        o.u32(self.mode)?;
        o.u32(self.nlink)?;
        o.u32(self.uid)?;
        o.u32(self.gid)?;
        o.u32(0)?; // rdev
        o.u32(4096)?; // blksize
        o.u32(0) // flags
    }
}

/// How long the kernel may cache an entry or its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub secs: u64,
    pub nsecs: u32,
}

/// `fuse_entry_out` (LOOKUP).
pub fn entry(
    o: &mut OutBuf<'_>,
    attr: &Attr,
    entry_valid: Validity,
    attr_valid: Validity,
) -> Result<(), Overflow> {
    o.u64(attr.ino)?; // nodeid
    o.u64(0)?; // generation: nodeids are never reused
    o.u64(entry_valid.secs)?;
    o.u64(attr_valid.secs)?;
    o.u32(entry_valid.nsecs)?;
    o.u32(attr_valid.nsecs)?;
    attr.encode(o)
}

/// `fuse_attr_out` (GETATTR).
pub fn attr_out(o: &mut OutBuf<'_>, attr: &Attr, valid: Validity) -> Result<(), Overflow> {
    o.u64(valid.secs)?;
    o.u32(valid.nsecs)?;
    o.u32(0)?;
    attr.encode(o)
}

/// `fuse_open_out` (OPEN, OPENDIR).
pub fn open_out(o: &mut OutBuf<'_>, fh: u64, open_flags: u32) -> Result<(), Overflow> {
    open_backed(o, fh, open_flags, 0)
}

/// `fuse_open_out` naming backing file `backing_id` (with FOPEN_PASSTHROUGH in the flags).
pub fn open_backed(
    o: &mut OutBuf<'_>,
    fh: u64,
    open_flags: u32,
    backing_id: u32,
) -> Result<(), Overflow> {
    o.u64(fh)?;
    o.u32(open_flags)?;
    o.u32(backing_id)
}

/// fuse_write_out: how many bytes were written.
pub fn write_out(o: &mut OutBuf<'_>, written: u32) -> Result<(), Overflow> {
    o.u32(written)?;
    o.u32(0)
}

/// fuse_poll_out: the events ready now.
pub fn poll_out(o: &mut OutBuf<'_>, revents: u32) -> Result<(), Overflow> {
    o.u32(revents)?;
    o.u32(0)
}

/// FUSE_NOTIFY_POLL for the kernel's file handle `kh`: its pollers poll again.
pub fn notify_poll(kh: u64) -> [u8; abi::OUT_HEADER_LEN + out_size::NOTIFY_POLL] {
    let mut msg = [0u8; abi::OUT_HEADER_LEN + out_size::NOTIFY_POLL];
    let len = msg.len() as u32;
    // The buffer is exactly a header and the handle.
    let _ = out_header(&mut msg, len, abi::NOTIFY_POLL, 0);
    msg[abi::OUT_HEADER_LEN..].copy_from_slice(&kh.to_ne_bytes());
    msg
}

/// `fuse_kstatfs` (STATFS): an empty, read-only filesystem.
pub fn statfs(o: &mut OutBuf<'_>, namelen: u32) -> Result<(), Overflow> {
    o.zeros(40)?; // blocks, bfree, bavail, files, ffree
    o.u32(4096)?; // bsize
    o.u32(namelen)?;
    o.u32(4096)?; // frsize
    o.zeros(4 + 24) // padding, spare[6]
}

/// One `fuse_dirent`, padded to 8 bytes. Returns Overflow (writing nothing) when the
/// entry does not fit in what is left, so READDIR can stop cleanly.
pub fn dirent(
    o: &mut OutBuf<'_>,
    ino: u64,
    next_off: u64,
    dtype: u32,
    name: &[u8],
) -> Result<(), Overflow> {
    let size = dirent_size(out_size::DIRENT_HEADER, name.len());
    if o.remaining() < size {
        return Err(Overflow);
    }
    o.u64(ino)?;
    o.u64(next_off)?;
    o.u32(name.len() as u32)?;
    o.u32(dtype)?;
    o.bytes(name)?;
    o.zeros(size - out_size::DIRENT_HEADER - name.len())
}

/// One `fuse_direntplus`: an entry_out followed by the dirent.
pub fn direntplus(
    o: &mut OutBuf<'_>,
    attr: &Attr,
    valid: Validity,
    next_off: u64,
    dtype: u32,
    name: &[u8],
) -> Result<(), Overflow> {
    let size = dirent_size(out_size::ENTRY + out_size::DIRENT_HEADER, name.len());
    if o.remaining() < size {
        return Err(Overflow);
    }
    entry(o, attr, valid, valid)?;
    dirent(o, attr.ino, next_off, dtype, name)
}

fn dirent_size(header: usize, namelen: usize) -> usize {
    (header + namelen).next_multiple_of(8)
}

/// What we answer to INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitOut {
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u64,
    pub max_background: u16,
    pub max_write: u32,
    pub max_pages: u16,
}

impl InitOut {
    /// Negotiate: the kernel's minor capped at ours, and of the flags we want, those the
    /// kernel offered.
    pub fn negotiate(kernel: &InitIn, wanted: u64, max_write: u32, max_pages: u16) -> InitOut {
        let flags = kernel.flags & wanted;
        InitOut {
            minor: kernel.minor.min(abi::KERNEL_MINOR_VERSION),
            max_readahead: kernel.max_readahead,
            flags,
            max_background: 64,
            max_write,
            max_pages: if flags & abi::init_flags::MAX_PAGES != 0 {
                max_pages
            } else {
                0
            },
        }
    }

    pub fn encode(&self, o: &mut OutBuf<'_>) -> Result<(), Overflow> {
        o.u32(abi::KERNEL_VERSION)?;
        o.u32(self.minor)?;
        o.u32(self.max_readahead)?;
        o.u32(self.flags as u32)?;
        o.u16(self.max_background)?;
        o.u16(self.max_background * 3 / 4)?; // congestion_threshold
        o.u32(self.max_write)?;
        o.u32(1)?; // time_gran
        o.u16(self.max_pages)?;
        o.u16(0)?; // map_alignment
        o.u32((self.flags >> 32) as u32)?; // flags2
        let depth = if self.flags & abi::init_flags::PASSTHROUGH != 0 {
            abi::MAX_STACK_DEPTH
        } else {
            0
        };
        o.u32(depth)?; // max_stack_depth
        o.zeros(out_size::INIT - 40)
    }
}
