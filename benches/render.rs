//! Rendering each file from cached inputs (fixtures), and the wire format: decoding each
//! request kind and encoding replies. `cargo bench --bench render`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lxcfs_uring::cgroupfs::cpu::CpuTime;
use lxcfs_uring::cgroupfs::memory::{MemStat, MemoryInputs, SwapInputs, vmstat_counters};
use lxcfs_uring::proto::{self, Attr, InitOut, OutBuf, Validity, abi, encode};
use lxcfs_uring::render::stat::{Procs, StatHistory, StatInputs, StatScratch, Usage};
use lxcfs_uring::render::{cpuinfo, loadavg, meminfo, stat, swaps, uptime, vmstat};

const HOST_MEMINFO: &[u8] = include_bytes!("../tests/fixtures/meminfo-host");
const HOST_CPUINFO: &[u8] = include_bytes!("../tests/fixtures/cpuinfo-x86_64");
const MEMORY_STAT_V1: &[u8] = include_bytes!("../fuzz/corpus/memory_stat/v1");

fn memory() -> MemoryInputs {
    MemoryInputs {
        unified: false,
        limit: Some(256 << 20),
        usage: 100 << 20,
        stat: MemStat::parse(MEMORY_STAT_V1, false),
        swap: Some(SwapInputs {
            limit: Some(512 << 20),
            usage: 0,
            swappiness: Some(60),
        }),
    }
}

fn host_stat(cpus: u32) -> Vec<u8> {
    let mut s = String::from("cpu  100 0 100 10000 0 0 0 0 0 0\n");
    for i in 0..cpus {
        s.push_str(&format!("cpu{i} 50 0 50 5000 10 0 3 0 0 0\n"));
    }
    s.push_str("intr 1 2 3\nctxt 999\nbtime 1700000000\nprocesses 42\nprocs_running 1\nprocs_blocked 0\nsoftirq 5 1 1\n");
    s.into_bytes()
}

fn renders(c: &mut Criterion) {
    let mut out = Vec::with_capacity(64 << 10);
    let m = memory();
    let swap = swaps::SwapView::new(&m, 2 << 20, true);
    c.bench_function("render/meminfo", |b| {
        b.iter(|| {
            out.clear();
            meminfo::render(
                black_box(HOST_MEMINFO),
                black_box(&m),
                &swap,
                true,
                &mut out,
            );
        })
    });
    c.bench_function("parse/memory.stat v1", |b| {
        b.iter(|| MemStat::parse(black_box(MEMORY_STAT_V1), false))
    });
    c.bench_function("render/swaps", |b| {
        b.iter(|| {
            out.clear();
            swaps::render(black_box(&swap), &mut out);
        })
    });
    let up = uptime::UptimeInputs {
        boottime_ns: 1 << 40,
        init_start_ns: 1 << 38,
        cpu_usage_ns: Some(1 << 35),
    };
    c.bench_function("render/uptime", |b| {
        b.iter(|| {
            out.clear();
            uptime::render(black_box(&up), &mut out);
        })
    });
    c.bench_function("render/cpuinfo (2 of 4 CPUs)", |b| {
        b.iter(|| {
            out.clear();
            cpuinfo::render(black_box(HOST_CPUINFO), &[1, 3], &mut out);
        })
    });
    bench_stat(c, "render/stat (2 CPUs)", 2, None);
    bench_stat(c, "render/stat (1024 CPUs)", 1024, None);
    let host_vmstat = include_bytes!("../tests/fixtures/vmstat-host");
    let stat_v2 = include_bytes!("../tests/fixtures/memory.stat-v2");
    let mut vm_history = vmstat::VmstatHistory::default();
    c.bench_function("render/vmstat (v2 memory.stat)", |b| {
        b.iter(|| {
            out.clear();
            let counts = vmstat_counters(black_box(stat_v2), b"oom_kill 0\n", true, 4096, 2 << 20);
            vmstat::render(black_box(host_vmstat), &counts, &mut vm_history, &mut out);
        })
    });
    let mut load = loadavg::Load::default();
    load.tick(2, 2, 10, 77);
    c.bench_function("render/loadavg", |b| {
        b.iter(|| {
            out.clear();
            loadavg::render(black_box(&load), &mut out);
        })
    });
}

/// /proc/stat for a container on `cpus` CPUs (every one shown, each with its own usage),
/// with the host's procs lines or `procs`.
fn bench_stat(c: &mut Criterion, name: &str, cpus: u32, procs: Option<Procs>) {
    let host = host_stat(cpus);
    let cpuset: Vec<u32> = (0..cpus).collect();
    let per = vec![
        CpuTime {
            user: 1 << 33,
            system: 1 << 32
        };
        cpus as usize
    ];
    let (mut history, mut scratch) = (StatHistory::default(), StatScratch::default());
    let mut out = Vec::with_capacity(64 << 10);
    c.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            let i = StatInputs {
                host: &host,
                cpuset: &cpuset,
                shown: cpuset.len(),
                renumber: false,
                usage: Usage::PerCpu(&per),
                quota_cpus: None,
                ticks_per_sec: 100,
                procs,
            };
            stat::render(black_box(&i), &mut history, &mut scratch, &mut out);
        })
    });
}

fn msg(op: u32, args: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((40 + args.len()) as u32).to_ne_bytes());
    v.extend_from_slice(&op.to_ne_bytes());
    v.extend_from_slice(&[0u8; 32]);
    v.extend_from_slice(args);
    v
}

fn wire(c: &mut Criterion) {
    let read = {
        let mut a = vec![0u8; 40];
        a[16..20].copy_from_slice(&4096u32.to_ne_bytes());
        msg(abi::opcode::READ, &a)
    };
    let requests = [
        ("lookup", msg(abi::opcode::LOOKUP, b"meminfo\0")),
        ("getattr", msg(abi::opcode::GETATTR, &[0u8; 16])),
        ("open", msg(abi::opcode::OPEN, &[0u8; 8])),
        ("read", read),
        ("release", msg(abi::opcode::RELEASE, &[0u8; 24])),
        (
            "init",
            msg(abi::opcode::INIT, &{
                let mut a = vec![0u8; 64];
                a[0..4].copy_from_slice(&7u32.to_ne_bytes());
                a[4..8].copy_from_slice(&45u32.to_ne_bytes());
                a
            }),
        ),
    ];
    for (name, m) in &requests {
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| proto::decode(black_box(m)).is_ok())
        });
    }
    let mut buf = vec![0u8; 4096];
    let attr = Attr {
        ino: 6,
        mode: 0o100444,
        nlink: 1,
        ..Attr::default()
    };
    let v = Validity {
        secs: 3600,
        nsecs: 0,
    };
    c.bench_function("encode/entry", |b| {
        b.iter(|| {
            let mut o = OutBuf::new(&mut buf);
            encode::entry(&mut o, black_box(&attr), v, v).unwrap();
        })
    });
    c.bench_function("encode/open", |b| {
        b.iter(|| {
            let mut o = OutBuf::new(&mut buf);
            encode::open_out(&mut o, black_box(7), abi::FOPEN_DIRECT_IO).unwrap();
        })
    });
    c.bench_function("encode/readdir (8 entries)", |b| {
        b.iter(|| {
            let mut o = OutBuf::new(&mut buf);
            for (i, name) in [
                &b"cpuinfo"[..],
                b"diskstats",
                b"loadavg",
                b"meminfo",
                b"slabinfo",
                b"stat",
                b"swaps",
                b"uptime",
            ]
            .iter()
            .enumerate()
            {
                encode::dirent(&mut o, i as u64 + 3, i as u64 + 1, 8, name).unwrap();
            }
        })
    });
    let k = proto::InitIn {
        major: 7,
        minor: 45,
        max_readahead: 131072,
        flags: u64::MAX,
    };
    c.bench_function("encode/init", |b| {
        b.iter(|| {
            let mut o = OutBuf::new(&mut buf);
            InitOut::negotiate(black_box(&k), 0xffff, 4096, 32)
                .encode(&mut o)
                .unwrap();
        })
    });
}

/// What /proc/stat's own procs_running and procs_blocked cost a read (with -l): the stat
/// render with and without them, the load tracker's lookup with 1000 containers tracked;
/// and what the rejected alternative, counting a container's thread states at each read,
/// would cost for a container of 100 threads (one /proc/<tid>/stat read per thread).
fn procs(c: &mut Criterion) {
    use lxcfs_uring::cgroupfs::mounts::Hierarchies;
    use lxcfs_uring::container::{Callers, Containers};
    use lxcfs_uring::kfile::{self, ProcPath};
    use lxcfs_uring::loadavg::LoadTracker;

    bench_stat(c, "procs/stat render, the host's lines", 2, None);
    bench_stat(
        c,
        "procs/stat render, the container's",
        2,
        Some(Procs {
            running: 3,
            blocked: 1,
        }),
    );

    let containers = Containers::new(Hierarchies::discover().unwrap()).unwrap();
    let mut buf = Vec::new();
    let me = containers
        .resolve_for(&mut Callers::default(), std::process::id(), &mut buf)
        .unwrap();
    let tracker = LoadTracker::default();
    let paths: Vec<String> = (0..1000).map(|i| format!("/lxc/container-{i}")).collect();
    for p in &paths {
        tracker.read(p, &me);
    }
    c.bench_function("procs/tracker lookup, 1000 containers tracked", |b| {
        b.iter(|| tracker.read(black_box(&paths[500]), &me))
    });

    let stop = std::sync::Arc::new(std::sync::Barrier::new(101));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                stop.wait();
            })
        })
        .collect();
    let tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    c.bench_function("procs/scan per read, 100 threads (rejected)", |b| {
        b.iter(|| {
            let mut running = 0;
            for &tid in &tids {
                if kfile::read_path(ProcPath::new(tid, "stat").as_cstr(), &mut buf).is_ok()
                    && buf.contains(&b'R')
                {
                    running += 1;
                }
            }
            running
        })
    });
    stop.wait();
    for t in threads {
        let _ = t.join();
    }
}

criterion_group!(benches, renders, wire, procs);
criterion_main!(benches);
