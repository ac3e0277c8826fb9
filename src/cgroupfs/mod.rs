//! cgroups: where hierarchies are mounted, which cgroup a process is in, and reads of
//! their files.

pub mod cpu;
pub mod dir;
pub mod fhandle;
pub mod io;
pub mod membership;
pub mod memory;
pub mod mounts;
pub mod numa;
pub mod tree;
