//! /proc/cpuinfo: the host's blocks of the container's CPUs, renumbered from 0, in the
//! host's own per-architecture format (x86 and arm64 `processor : N` blocks; s390x's
//! summary lines `processor N: ...` and `cpu number : N` blocks).

use super::num;
use crate::kfile::{lines, parse_u64};

/// `visible` holds host CPU ids, ascending.
pub fn render(host: &[u8], visible: &[u32], out: &mut Vec<u8>) {
    let shows = |n: Option<u64>| {
        n.and_then(|n| u32::try_from(n).ok())
            .is_some_and(|n| visible.binary_search(&n).is_ok())
    };
    let mut keep = true;
    let (mut blocks, mut cpu_numbers, mut summaries) = (0u64, 0u64, 0u64);
    for line in lines(host) {
        let text = line.trim_ascii_end();
        if let Some(n) = block_start(text, b"processor") {
            keep = shows(n);
            if keep {
                renumbered(out, text, blocks);
                blocks += 1;
            }
        } else if let Some(n) = block_start(text, b"cpu number") {
            keep = shows(n);
            if keep {
                renumbered(out, text, cpu_numbers);
                cpu_numbers += 1;
            }
        } else if let Some((n, rest)) = s390_summary(text) {
            if shows(Some(n)) {
                out.extend_from_slice(b"processor ");
                num(out, summaries);
                out.extend_from_slice(rest);
                out.push(b'\n');
                summaries += 1;
            }
        } else if text.starts_with(b"# processors") {
            let colon = memchr::memchr(b':', text).unwrap_or(text.len() - 1);
            out.extend_from_slice(&text[..=colon]);
            out.push(b' ');
            num(out, visible.len() as u64);
            out.push(b'\n');
        } else if text.is_empty() {
            // A blank line ends a block: lines after it belong to no CPU.
            if keep {
                out.extend_from_slice(line);
            }
            keep = true;
        } else if keep {
            out.extend_from_slice(line);
        }
    }
}

/// `key<spaces/tabs>: N` starts a CPU's block; Some(N), or Some(None) for a garbled N
/// (such a block is never shown).
fn block_start(text: &[u8], key: &[u8]) -> Option<Option<u64>> {
    let rest = text.strip_prefix(key)?;
    let rest = rest.trim_ascii_start();
    let value = rest.strip_prefix(b":")?;
    Some(parse_u64(value))
}

/// s390x's `processor N: version = ...`: (N, the text from the colon on).
fn s390_summary(text: &[u8]) -> Option<(u64, &[u8])> {
    let rest = text.strip_prefix(b"processor ")?;
    let colon = memchr::memchr(b':', rest)?;
    let n = parse_u64(&rest[..colon])?;
    Some((n, &rest[colon..]))
}

/// The key part of `text` up to its colon, then the new number.
fn renumbered(out: &mut Vec<u8>, text: &[u8], n: u64) {
    let colon = memchr::memchr(b':', text).unwrap_or(text.len().saturating_sub(1));
    out.extend_from_slice(&text[..=colon.min(text.len().saturating_sub(1))]);
    out.push(b' ');
    num(out, n);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: &[u8] = include_bytes!("../../tests/fixtures/cpuinfo-x86_64");
    const ARM64: &[u8] = include_bytes!("../../tests/fixtures/cpuinfo-arm64");
    const S390X: &[u8] = include_bytes!("../../tests/fixtures/cpuinfo-s390x");

    fn r(host: &[u8], visible: &[u32]) -> String {
        let mut out = Vec::new();
        render(host, visible, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(key))
            .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
            .collect()
    }

    #[test]
    fn x86_keeps_visible_blocks_renumbered() {
        let all = r(X86, &[0, 1, 2, 3]);
        assert_eq!(
            all,
            String::from_utf8_lossy(X86),
            "all CPUs visible: unchanged"
        );
        let one = r(X86, &[2]);
        assert_eq!(values(&one, "processor"), vec!["0"]);
        assert_eq!(values(&one, "apicid"), vec!["2"], "the block of host CPU 2");
        assert_eq!(one.matches("model name").count(), 1);
        assert!(one.ends_with("\n\n"), "blocks stay separated");
        let two = r(X86, &[1, 3]);
        assert_eq!(values(&two, "processor"), vec!["0", "1"]);
        assert_eq!(values(&two, "apicid"), vec!["1", "3"]);
        assert_eq!(r(X86, &[]), "");
        assert_eq!(r(X86, &[7]), "");
    }

    #[test]
    fn arm64() {
        let out = r(ARM64, &[1, 2]);
        assert_eq!(values(&out, "processor"), vec!["0", "1"]);
        assert_eq!(out.matches("BogoMIPS").count(), 2);
        assert!(out.starts_with("processor\t: 0\n"));
    }

    #[test]
    fn s390x_summary_lines_blocks_and_count() {
        let out = r(S390X, &[1, 3]);
        assert_eq!(values(&out, "# processors"), vec!["2"]);
        assert!(out.starts_with("vendor_id"), "header kept: {out}");
        assert!(out.contains("facilities"));
        let summaries: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("processor "))
            .collect();
        assert_eq!(summaries.len(), 2, "{out}");
        assert!(summaries[0].starts_with("processor 0: version"));
        assert!(summaries[1].starts_with("processor 1: version"));
        assert_eq!(values(&out, "cpu number"), vec!["0", "1"]);
        assert_eq!(values(&out, "core id"), vec!["1", "3"]);
    }

    #[test]
    fn a_1024_cpu_host_is_never_truncated() {
        let block = std::str::from_utf8(X86)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        let host: String = (0..1024)
            .map(|i| block.replacen("processor\t: 0", &format!("processor\t: {i}"), 1) + "\n\n")
            .collect();
        let all: Vec<u32> = (0..1024).collect();
        let out = r(host.as_bytes(), &all);
        assert_eq!(out.len(), host.len());
        assert!(out.len() > 1 << 20, "over a megabyte: {}", out.len());
        let some = r(host.as_bytes(), &[5, 700, 1023]);
        assert_eq!(values(&some, "processor"), vec!["0", "1", "2"]);
    }

    #[test]
    fn hostile_host_text() {
        for host in [
            &b""[..],
            b"processor",
            b"processor\t: x\nfoo\n",
            b"processor : 99999999999999999999999\n",
            b"\n\n\n",
            b"# processors",
        ] {
            let _ = r(host, &[0]);
        }
        assert_eq!(r(b"processor\t: x\nfoo\n\nbar\n", &[0]), "bar\n");
    }
}
