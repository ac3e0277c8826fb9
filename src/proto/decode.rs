//! Request decoding: kernel bytes in, a typed request borrowing them out.
//!
//! Every length is untrusted. Decoding never panics and never reads out of bounds: any
//! malformed message becomes a `DecodeError`, which the caller answers with EIO (when the
//! header was readable) or drops.

use super::abi::{self, in_size, opcode};

/// A request header (`fuse_in_header`), copied out: it is five words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 40 bytes: not even a header to answer.
    ShortHeader,
    /// `len` disagrees with what was received.
    BadLength,
    /// The argument struct of this opcode is cut short.
    ShortArgs,
    /// A name is missing its NUL or is empty.
    BadName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    /// `flags | flags2 << 32` (flags2 only when FUSE_INIT_EXT is set).
    pub flags: u64,
}

/// The operations, with their arguments borrowed from the request bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Init(InitIn),
    Destroy,
    Lookup {
        name: &'a [u8],
    },
    Forget {
        nlookup: u64,
    },
    BatchForget {
        forgets: ForgetList<'a>,
    },
    Getattr {
        fh: Option<u64>,
    },
    Setattr(SetattrIn),
    Open {
        flags: u32,
    },
    Opendir {
        flags: u32,
    },
    Read {
        fh: u64,
        offset: u64,
        size: u32,
        read_flags: u32,
    },
    Readdir {
        fh: u64,
        offset: u64,
        size: u32,
        plus: bool,
    },
    Write {
        fh: u64,
        offset: u64,
        /// The bytes to write (the kernel's `size` of them).
        data: &'a [u8],
    },
    Release {
        fh: u64,
    },
    Releasedir {
        fh: u64,
    },
    Flush {
        fh: u64,
    },
    Statfs,
    Access {
        mask: u32,
    },
    Interrupt {
        unique: u64,
    },
    Readlink,
    Poll {
        fh: u64,
        /// The kernel's handle of the open file, to name in FUSE_NOTIFY_POLL.
        kh: u64,
        flags: u32,
        /// The poll(2) events asked for.
        events: u32,
    },
    Mkdir {
        name: &'a [u8],
        /// The mode asked for, the caller's umask already applied by the kernel.
        mode: u32,
    },
    Rmdir {
        name: &'a [u8],
    },
    /// mknod, symlink, link, create, tmpfile: something new would appear.
    Create {
        name: &'a [u8],
    },
    /// unlink, rename, rename2: something would go or move.
    Remove,
    /// Any opcode we do not implement (xattrs, fsync, locks, ioctl, ...).
    Unsupported,
}

impl Op<'_> {
    /// A READ the kernel sends to fill the inode's page cache (splice, sendfile, a
    /// private mmap of a direct-I/O file) rather than for a program's read, which always
    /// names its lock owner.
    pub fn is_page_cache_read(&self) -> bool {
        matches!(self, Op::Read { read_flags, .. } if read_flags & super::abi::READ_LOCKOWNER == 0)
    }
}

/// What a SETATTR asks to change (fuse_setattr_in); `valid` says which fields count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetattrIn {
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

impl SetattrIn {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;

    pub fn has(&self, bit: u32) -> bool {
        self.valid & bit != 0
    }
}

/// The records of a BATCH_FORGET, decoded lazily.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgetList<'a> {
    raw: &'a [u8],
}

impl<'a> Iterator for ForgetList<'a> {
    /// (nodeid, nlookup)
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        let (rec, rest) = split(self.raw, in_size::FORGET_ONE)?;
        self.raw = rest;
        Some((u64_at(rec, 0), u64_at(rec, 8)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub header: InHeader,
    pub op: Op<'a>,
}

/// Where a request's arguments sit: one buffer read from /dev/fuse, or a
/// FUSE-over-io_uring entry whose fixed argument struct is in `op_in` and the rest in
/// the payload.
#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    Contiguous(&'a [u8]),
    Split { op_in: &'a [u8], payload: &'a [u8] },
}

impl<'a> Body<'a> {
    /// The fixed argument struct of `n` bytes, and what follows it.
    fn fixed(self, n: usize) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        match self {
            Body::Contiguous(b) => split(b, n).ok_or(DecodeError::ShortArgs),
            Body::Split { op_in, payload } => {
                let (f, _) = split(op_in, n).ok_or(DecodeError::ShortArgs)?;
                Ok((f, payload))
            }
        }
    }

    /// For ops whose only argument is variable (a name): everything.
    fn tail(self) -> &'a [u8] {
        match self {
            Body::Contiguous(b) => b,
            Body::Split { payload, .. } => payload,
        }
    }
}

/// Decode one whole message read from /dev/fuse.
pub fn decode(buf: &[u8]) -> Result<Request<'_>, DecodeError> {
    let header = decode_header(buf)?;
    if header.len as usize != buf.len() {
        return Err(DecodeError::BadLength);
    }
    let body = Body::Contiguous(&buf[abi::IN_HEADER_LEN..]);
    Ok(Request {
        header,
        op: decode_op(&header, body)?,
    })
}

/// Decode a FUSE-over-io_uring entry: the in_out header area, the op_in area and the
/// `payload_sz` bytes of payload the kernel reported.
pub fn decode_ring<'a>(
    in_out: &[u8],
    op_in: &'a [u8],
    payload: &'a [u8],
) -> Result<Request<'a>, DecodeError> {
    let header = decode_header(in_out)?;
    let body = Body::Split { op_in, payload };
    Ok(Request {
        header,
        op: decode_op(&header, body)?,
    })
}

/// Just the header, for answering a request whose arguments did not decode.
pub fn decode_header(buf: &[u8]) -> Result<InHeader, DecodeError> {
    let (h, _) = split(buf, abi::IN_HEADER_LEN).ok_or(DecodeError::ShortHeader)?;
    let header = InHeader {
        len: u32_at(h, 0),
        opcode: u32_at(h, 4),
        unique: u64_at(h, 8),
        nodeid: u64_at(h, 16),
        uid: u32_at(h, 24),
        gid: u32_at(h, 28),
        pid: u32_at(h, 32),
        total_extlen: u16_at(h, 36),
    };
    if (header.len as usize) < abi::IN_HEADER_LEN {
        return Err(DecodeError::BadLength);
    }
    Ok(header)
}

fn decode_op<'a>(h: &InHeader, body: Body<'a>) -> Result<Op<'a>, DecodeError> {
    const GETATTR_FH: u32 = 1 << 0;
    let op = match h.opcode {
        opcode::INIT => decode_init(body)?,
        opcode::DESTROY => Op::Destroy,
        opcode::LOOKUP => Op::Lookup {
            name: name(body.tail())?,
        },
        opcode::FORGET => Op::Forget {
            nlookup: u64_at(body.fixed(in_size::FORGET)?.0, 0),
        },
        opcode::BATCH_FORGET => {
            let (f, rest) = body.fixed(in_size::BATCH_FORGET)?;
            let count = u32_at(f, 0) as usize;
            let want = count
                .checked_mul(in_size::FORGET_ONE)
                .ok_or(DecodeError::ShortArgs)?;
            let raw = split(rest, want).ok_or(DecodeError::ShortArgs)?.0;
            Op::BatchForget {
                forgets: ForgetList { raw },
            }
        }
        opcode::GETATTR => {
            // Kernels before 7.9 send no fuse_getattr_in.
            match body.fixed(in_size::GETATTR) {
                Ok((f, _)) if u32_at(f, 0) & GETATTR_FH != 0 => Op::Getattr {
                    fh: Some(u64_at(f, 8)),
                },
                _ => Op::Getattr { fh: None },
            }
        }
        opcode::SETATTR => {
            let f = body.fixed(in_size::SETATTR)?.0;
            Op::Setattr(SetattrIn {
                valid: u32_at(f, 0),
                size: u64_at(f, 16),
                mode: u32_at(f, 68),
                uid: u32_at(f, 76),
                gid: u32_at(f, 80),
            })
        }
        opcode::OPEN => Op::Open {
            flags: u32_at(body.fixed(in_size::OPEN)?.0, 0),
        },
        opcode::OPENDIR => Op::Opendir {
            flags: u32_at(body.fixed(in_size::OPEN)?.0, 0),
        },
        opcode::READ | opcode::READDIR | opcode::READDIRPLUS => {
            let f = body.fixed(in_size::READ)?.0;
            let (fh, offset, size) = (u64_at(f, 0), u64_at(f, 8), u32_at(f, 16));
            if h.opcode == opcode::READ {
                Op::Read {
                    fh,
                    offset,
                    size,
                    read_flags: u32_at(f, 20),
                }
            } else {
                let plus = h.opcode == opcode::READDIRPLUS;
                Op::Readdir {
                    fh,
                    offset,
                    size,
                    plus,
                }
            }
        }
        opcode::WRITE => {
            let (f, rest) = body.fixed(in_size::WRITE)?;
            let size = u32_at(f, 16) as usize;
            Op::Write {
                fh: u64_at(f, 0),
                offset: u64_at(f, 8),
                data: split(rest, size).ok_or(DecodeError::ShortArgs)?.0,
            }
        }
        opcode::RELEASE => Op::Release {
            fh: u64_at(body.fixed(in_size::RELEASE)?.0, 0),
        },
        opcode::RELEASEDIR => Op::Releasedir {
            fh: u64_at(body.fixed(in_size::RELEASE)?.0, 0),
        },
        opcode::FLUSH => Op::Flush {
            fh: u64_at(body.fixed(in_size::FLUSH)?.0, 0),
        },
        opcode::STATFS => Op::Statfs,
        opcode::ACCESS => Op::Access {
            mask: u32_at(body.fixed(in_size::ACCESS)?.0, 0),
        },
        opcode::INTERRUPT => Op::Interrupt {
            unique: u64_at(body.fixed(in_size::INTERRUPT)?.0, 0),
        },
        opcode::READLINK => Op::Readlink,
        opcode::POLL => {
            let f = body.fixed(in_size::POLL)?.0;
            Op::Poll {
                fh: u64_at(f, 0),
                kh: u64_at(f, 8),
                flags: u32_at(f, 16),
                events: u32_at(f, 20),
            }
        }
        opcode::MKNOD => Op::Create {
            name: name(body.fixed(in_size::MKNOD)?.1)?,
        },
        opcode::MKDIR => {
            let (f, rest) = body.fixed(in_size::MKDIR)?;
            Op::Mkdir {
                name: name(rest)?,
                mode: u32_at(f, 0),
            }
        }
        opcode::CREATE => Op::Create {
            name: name(body.fixed(in_size::CREATE)?.1)?,
        },
        opcode::LINK => Op::Create {
            name: name(body.fixed(in_size::LINK)?.1)?,
        },
        // symlink: name then target, both NUL-terminated, no fixed struct.
        opcode::SYMLINK => Op::Create {
            name: name(body.tail())?,
        },
        opcode::TMPFILE => Op::Create { name: b"" },
        opcode::RMDIR => Op::Rmdir {
            name: name(body.tail())?,
        },
        opcode::UNLINK => {
            name(body.tail())?;
            Op::Remove
        }
        opcode::RENAME => {
            name(body.fixed(in_size::RENAME)?.1)?;
            Op::Remove
        }
        opcode::RENAME2 => {
            name(body.fixed(in_size::RENAME2)?.1)?;
            Op::Remove
        }
        _ => Op::Unsupported,
    };
    Ok(op)
}

fn decode_init(body: Body<'_>) -> Result<Op<'_>, DecodeError> {
    let f = body.fixed(in_size::INIT_MIN)?.0;
    let mut flags = u64::from(u32_at(f, 12));
    if flags & abi::init_flags::INIT_EXT != 0
        && let Ok((full, _)) = body.fixed(in_size::INIT_FULL)
    {
        flags |= u64::from(u32_at(full, 16)) << 32;
    }
    Ok(Op::Init(InitIn {
        major: u32_at(f, 0),
        minor: u32_at(f, 4),
        max_readahead: u32_at(f, 8),
        flags,
    }))
}

/// A NUL-terminated, non-empty name without '/'; the NUL is not part of the result.
fn name(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let end = memchr::memchr(0, bytes).ok_or(DecodeError::BadName)?;
    let n = &bytes[..end];
    if n.is_empty() || memchr::memchr(b'/', n).is_some() {
        return Err(DecodeError::BadName);
    }
    Ok(n)
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    if b.len() < n {
        None
    } else {
        Some(b.split_at(n))
    }
}

// The helpers below are only called on slices already checked to hold the field.
fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_ne_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}
