//! Renderers: pure functions from parsed inputs to the bytes of one virtual file.
//!
//! They append to a caller-owned buffer, never touch a file descriptor and never fail:
//! whatever the inputs, the output is a well-formed file.

pub mod cpuinfo;
pub mod diskstats;
pub mod loadavg;
pub mod meminfo;
pub mod node;
pub mod stat;
pub mod swaps;
pub mod uptime;
pub mod vmstat;

/// Append `n` in decimal.
pub fn num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Append `n` right-aligned in `width` columns, as printf's `%*lu`.
pub fn num_width(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(n).as_bytes();
    for _ in s.len()..width {
        out.push(b' ');
    }
    out.extend_from_slice(s);
}

/// Append hundredths as `%.2f` prints seconds: `1234.05`.
pub fn centis(out: &mut Vec<u8>, hundredths: u64) {
    num(out, hundredths / 100);
    out.push(b'.');
    let frac = hundredths % 100;
    if frac < 10 {
        out.push(b'0');
    }
    num(out, frac);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        num_width(&mut v, 42, 8);
        assert_eq!(v, b"      42");
        v.clear();
        num_width(&mut v, 123456789, 8);
        assert_eq!(v, b"123456789");
        v.clear();
        centis(&mut v, 123405);
        assert_eq!(v, b"1234.05");
        v.clear();
        centis(&mut v, 7);
        assert_eq!(v, b"0.07");
    }
}
