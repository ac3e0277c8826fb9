//! The FUSE wire format, written by hand: decoding requests, encoding replies.

pub mod abi;
pub mod decode;
pub mod encode;

pub use decode::{
    DecodeError, InHeader, InitIn, Op, Request, SetattrIn, decode, decode_header, decode_ring,
};
pub use encode::{Attr, InitOut, OutBuf, Overflow, Validity};

#[cfg(test)]
mod tests;
