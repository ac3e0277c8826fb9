//! lxcfs-uring: a FUSE filesystem that shows each container its own /proc files, served
//! over FUSE-over-io_uring with a hand-written protocol layer.
//!
//! Modules, from the kernel inwards: `mount` and `ring` (transports) move bytes, `proto`
//! decodes and encodes them, `fs` answers requests over the static tree, `container`
//! finds who is asking, `cgroupfs` and `kfile` read the kernel's files, `render` turns
//! inputs into file contents.

pub mod caps;
pub mod cgroupfs;
pub mod cli;
pub mod container;
pub mod control;
pub mod cpulist;
pub mod daemon;
pub mod fs;
pub mod keeper;
pub mod kfile;
pub mod loadavg;
pub mod log;
pub mod memory;
pub mod mount;
pub mod oci_hook;
pub mod pidfile;
pub mod proto;
pub mod render;
pub mod ring;
pub mod stats;
pub mod upgrade;
