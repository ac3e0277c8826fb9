//! Kernel CPU lists ("0-3,8,10-11"): cpuset files and /sys/devices/system/cpu/*.

/// The CPUs of a list, ascending. Malformed pieces make the whole list None: a half-read
/// cpuset must not be mistaken for a smaller one.
pub fn parse(text: &[u8]) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    parse_into(text, &mut cpus).then_some(cpus)
}

/// `parse` into a reused vector; false (and `cpus` unspecified) when malformed.
pub fn parse_into(text: &[u8], cpus: &mut Vec<u32>) -> bool {
    cpus.clear();
    parse_ranges(text.trim_ascii(), cpus).is_some()
}

fn parse_ranges(t: &[u8], cpus: &mut Vec<u32>) -> Option<()> {
    if t.is_empty() {
        return Some(());
    }
    for part in t.split(|&c| c == b',') {
        let (a, b) = match memchr::memchr(b'-', part) {
            Some(i) => (num(&part[..i])?, num(&part[i + 1..])?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        // Linux caps NR_CPUS at 8192; anything larger is garbage, not a CPU.
        if a > b || b >= 8192 {
            return None;
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(())
}

fn num(b: &[u8]) -> Option<u32> {
    crate::kfile::parse_u64(b).and_then(|v| u32::try_from(v).ok())
}

/// Write `cpus` (ascending) in the kernel's list format: `0-3,8,10-11` and a newline.
pub fn format(cpus: &[u32], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut first = true;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !first {
            out.push(b',');
        }
        first = false;
        crate::render::num(out, u64::from(start));
        if end != start {
            out.push(b'-');
            crate::render::num(out, u64::from(end));
        }
        i += 1;
    }
    out.push(b'\n');
}

/// Write `0-(n-1)` (or just `0`, or an empty line for 0) without building a list.
pub fn format_range(n: u32, out: &mut Vec<u8>) {
    if n > 0 {
        out.push(b'0');
    }
    if n > 1 {
        out.push(b'-');
        crate::render::num(out, u64::from(n - 1));
    }
    out.push(b'\n');
}

/// Read a CPU list file such as /sys/devices/system/cpu/online.
pub fn read(path: &std::ffi::CStr) -> std::io::Result<Vec<u32>> {
    let mut buf = Vec::new();
    crate::kfile::read_path(path, &mut buf)?;
    parse(&buf).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        for (n, want) in [(0, "\n"), (1, "0\n"), (2, "0-1\n"), (64, "0-63\n")] {
            let mut out = Vec::new();
            format_range(n, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["0-3,8,10-11\n", "1\n", "\n", "0,2,4\n", "5-6\n"] {
            let cpus = parse(text.as_bytes()).unwrap();
            let mut out = Vec::new();
            format(&cpus, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn lists() {
        assert_eq!(parse(b"0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse(b"1"), Some(vec![1]));
        assert_eq!(parse(b"\n"), Some(vec![]));
        assert_eq!(parse(b"3,1,1"), Some(vec![1, 3]));
        for bad in [
            &b"3-1"[..],
            b"a",
            b"1-",
            b"-1",
            b"1,,2",
            b"0-99999",
            b"4294967296",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
