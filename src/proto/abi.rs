//! Constants of the FUSE kernel ABI (`include/uapi/linux/fuse.h`), protocol 7.x.
//!
//! Only the numbers live here; the layouts are written out field by field in
//! `decode.rs` and `encode.rs`, so no struct is ever overlaid on kernel bytes.

/// The protocol major version we speak.
pub const KERNEL_VERSION: u32 = 7;
/// The newest minor version we know (Linux 6.18 speaks 7.45).
pub const KERNEL_MINOR_VERSION: u32 = 45;

pub const IN_HEADER_LEN: usize = 40;
pub const OUT_HEADER_LEN: usize = 16;

/// Bit 63 of `unique` marks a request the kernel resent after FUSE_NOTIFY_RESEND.
pub const UNIQUE_RESEND: u64 = 1 << 63;

pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const POLL: u32 = 40;
    pub const BATCH_FORGET: u32 = 42;
    pub const READDIRPLUS: u32 = 44;
    pub const RENAME2: u32 = 45;
    pub const TMPFILE: u32 = 51;
}

/// FUSE_INIT flags (`flags | flags2 << 32`).
pub mod init_flags {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DO_READDIRPLUS: u64 = 1 << 13;
    pub const ASYNC_DIO: u64 = 1 << 15;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const NO_OPENDIR_SUPPORT: u64 = 1 << 24;
    pub const INIT_EXT: u64 = 1 << 30;
    /// Reads of an open the server names a backing file for go to that file (6.9+).
    pub const PASSTHROUGH: u64 = 1 << 37;
    pub const HAS_RESEND: u64 = 1 << 39;
    pub const OVER_IO_URING: u64 = 1 << 41;
}

/// fuse_open_out.open_flags
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
/// The open names a backing file (fuse_open_out.backing_id); with FOPEN_DIRECT_IO its
/// reads still come to us.
pub const FOPEN_PASSTHROUGH: u32 = 1 << 7;

/// The stacking depth we declare with PASSTHROUGH: backing files are memfds (depth 0).
pub const MAX_STACK_DEPTH: u32 = 1;

/// ioctls on a /dev/fuse file (`_IOW(229, nr, size)`): register a file as a backing file
/// (struct fuse_backing_map {fd, flags, padding}, returns its id), and free an id (u32).
pub const DEV_IOC_BACKING_OPEN: u64 = 0x4010_e501;
pub const DEV_IOC_BACKING_CLOSE: u64 = 0x4004_e502;

/// fuse_read_in.read_flags: the kernel names the reading task's file table. Every read
/// a program makes on a direct-I/O file carries it; the kernel's own page-cache reads
/// (splice, sendfile, private mmap) do not.
pub const READ_LOCKOWNER: u32 = 1 << 1;

/// fuse_poll_in.flags: the kernel has a poller waiting and wants FUSE_NOTIFY_POLL for `kh`.
pub const POLL_SCHEDULE_NOTIFY: u32 = 1 << 0;

/// fuse_notify_code
pub const NOTIFY_POLL: i32 = 1;
pub const NOTIFY_INVAL_INODE: i32 = 2;
pub const NOTIFY_RESEND: i32 = 7;

/// Sizes of the fixed argument structs the kernel sends.
pub mod in_size {
    pub const FORGET: usize = 8;
    pub const GETATTR: usize = 16;
    pub const SETATTR: usize = 88;
    pub const OPEN: usize = 8;
    pub const READ: usize = 40;
    pub const WRITE: usize = 40;
    pub const RELEASE: usize = 24;
    pub const FLUSH: usize = 24;
    pub const ACCESS: usize = 8;
    pub const INTERRUPT: usize = 8;
    pub const BATCH_FORGET: usize = 8;
    pub const FORGET_ONE: usize = 16;
    /// fuse_init_in before 7.36 had only major, minor, max_readahead, flags.
    pub const INIT_MIN: usize = 16;
    pub const INIT_FULL: usize = 64;
    pub const MKNOD: usize = 16;
    pub const MKDIR: usize = 8;
    pub const RENAME: usize = 8;
    pub const RENAME2: usize = 16;
    pub const LINK: usize = 8;
    pub const CREATE: usize = 16;
    pub const SETXATTR: usize = 16;
    pub const GETXATTR: usize = 8;
    pub const FSYNC: usize = 16;
    pub const POLL: usize = 24;
}

/// Sizes of the fixed reply structs; the kernel insists on these exactly.
pub mod out_size {
    pub const ATTR: usize = 88;
    pub const ENTRY: usize = 128;
    pub const ATTR_OUT: usize = 104;
    pub const OPEN: usize = 16;
    pub const STATFS: usize = 80;
    pub const INIT: usize = 64;
    pub const DIRENT_HEADER: usize = 24;
    pub const POLL: usize = 8;
    /// fuse_notify_poll_wakeup_out
    pub const NOTIFY_POLL: usize = 8;
}
