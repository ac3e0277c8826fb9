//! Open files and their snapshots.
//!
//! Each open file keeps the bytes rendered when it was opened (and again at a later read
//! at offset 0), so a reader reading in small pieces sees one consistent file. The table
//! is sharded so two workers rarely meet on a lock, and each lock is held only to move a
//! buffer in or out, or to copy.

use std::sync::Mutex;
use std::time::Instant;

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
/// Open files at most, over all shards: past this OPEN fails with ENFILE.
const MAX_OPEN: usize = 1 << 20;
/// Snapshot buffers kept for reuse per shard: at most this many bytes in all, none larger
/// than `POOL_MAX_BUFFER` (a burst of open files must not leave its buffers behind).
const POOL_BYTES: usize = 16 << 10;
const POOL_MAX_BUFFER: usize = 16 << 10;
/// Set in a file handle whose open was counted against its node's backing file
/// (`backing.rs`), so its RELEASE uncounts it, whichever process answers it. Slots stay
/// far below this bit. A handle of 0 besides this bit names no open file (generations
/// start at 1): the open of a file whose reads the kernel serves keeps no snapshot.
pub const COUNTED: u64 = 1 << 31;
/// Slot table entries a shard keeps when it empties.
const KEEP_SLOTS: usize = 64;

#[derive(Debug)]
pub struct OpenFile {
    pub node: u64,
    /// None until a render succeeds.
    pub snapshot: Option<Vec<u8>>,
    /// When the snapshot was rendered.
    pub rendered_at: Instant,
    /// When a read past offset 0 was last served: the other pieces of a large read may
    /// still be in flight.
    pub mid_read_at: Option<Instant>,
    /// The thread that opened it, when its open was counted (`COUNTED`).
    pub opener: u32,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    file: Option<OpenFile>,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The generation of the last open: one counter for the shard, not one per slot, so
    /// the slot table can be dropped when the shard empties without a new file taking a
    /// generation a stale fh still carries.
    generation: u32,
    pool: Vec<Vec<u8>>,
    pooled: usize,
}

pub struct Handles {
    shards: Vec<Mutex<Shard>>,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// (shard, slot, generation) of a file handle; generations make a stale or forged fh
/// miss instead of reaching another open file.
fn split(fh: u64) -> (usize, usize, u32) {
    let low = (fh & !COUNTED) as u32;
    (
        (low as usize) & (SHARDS - 1),
        (low >> SHARD_BITS) as usize,
        (fh >> 32) as u32,
    )
}

impl Shard {
    fn recycle(&mut self, b: Vec<u8>) {
        let size = b.capacity();
        if size <= POOL_MAX_BUFFER && self.pooled + size <= POOL_BYTES {
            self.pooled += size;
            self.pool.push(b);
        } else {
            crate::memory::freed(size);
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let b = self.pool.pop().unwrap_or_default();
        self.pooled -= b.capacity();
        b
    }

    /// Once no file of the shard is open, a slot table a burst grew (it is as large as the
    /// most files the shard ever held at once) goes back to the allocator; a small one
    /// stays, so that ordinary open-read-close cycles allocate nothing.
    fn shrink_if_empty(&mut self) {
        if self.free.len() == self.slots.len() && self.slots.capacity() > KEEP_SLOTS {
            crate::memory::freed(
                self.slots.capacity() * std::mem::size_of::<Slot>() + self.free.capacity() * 4,
            );
            self.slots = Vec::new();
            self.free = Vec::new();
        }
    }
}

impl Handles {
    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A worker that panicked while holding the lock left consistent data: every
        // mutation below is a single assignment.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open `node`; `hint` spreads workers over shards. None when the table is full.
    pub fn open(&self, node: u64, hint: usize) -> Option<u64> {
        let si = hint & (SHARDS - 1);
        let mut s = self.shard(si);
        let slot = match s.free.pop() {
            Some(i) => i as usize,
            None => {
                if s.slots.len() >= MAX_OPEN / SHARDS {
                    return None;
                }
                s.slots.push(Slot::default());
                s.slots.len() - 1
            }
        };
        // Never 0: a handle of 0 besides `COUNTED` names no open file.
        s.generation = s.generation.wrapping_add(1).max(1);
        let generation = s.generation;
        let entry = &mut s.slots[slot];
        entry.generation = generation;
        entry.file = Some(OpenFile {
            node,
            snapshot: None,
            rendered_at: Instant::now(),
            mid_read_at: None,
            opener: 0,
        });
        let low = ((slot as u32) << SHARD_BITS) | si as u32;
        Some(u64::from(entry.generation) << 32 | u64::from(low))
    }

    /// Make `fh`, which a predecessor process handed out for `node`, an open file here too
    /// (its slot taken, its generation kept), so no new open is given the same handle.
    /// False when the handle cannot be placed (its slot is in use here).
    pub fn adopt(&self, fh: u64, node: u64) -> bool {
        let (si, slot, generation) = split(fh);
        if slot >= MAX_OPEN / SHARDS {
            return false;
        }
        let mut s = self.shard(si);
        while s.slots.len() <= slot {
            let i = s.slots.len() as u32;
            s.slots.push(Slot::default());
            s.free.push(i);
        }
        let Some(at) = s.free.iter().position(|&i| i as usize == slot) else {
            return false;
        };
        s.free.swap_remove(at);
        s.slots[slot] = Slot {
            generation,
            file: Some(OpenFile {
                node,
                snapshot: None,
                rendered_at: Instant::now(),
                mid_read_at: None,
                opener: 0,
            }),
        };
        true
    }

    /// Run `f` on the open file `fh` under its shard's lock.
    pub fn with<R>(&self, fh: u64, f: impl FnOnce(&mut OpenFile) -> R) -> Option<R> {
        let (si, slot, generation) = split(fh);
        let mut s = self.shard(si);
        let e = s
            .slots
            .get_mut(slot)
            .filter(|e| e.generation == generation)?;
        e.file.as_mut().map(f)
    }

    /// An empty buffer to render a snapshot of `fh` into, from its shard's pool.
    pub fn buffer(&self, fh: u64) -> Vec<u8> {
        let (si, _, _) = split(fh);
        let mut b = self.shard(si).take();
        b.clear();
        b
    }

    /// Keep `snapshot` as what `fh` shows from now on, in one step (a concurrent read
    /// sees the old snapshot or the new one, never none); the old one's buffer, or
    /// `snapshot` itself when `fh` is gone, goes back to the pool.
    pub fn store(&self, fh: u64, snapshot: Vec<u8>) {
        let (si, slot, generation) = split(fh);
        let mut s = self.shard(si);
        let spare = match s.slots.get_mut(slot).filter(|e| e.generation == generation) {
            Some(Slot { file: Some(f), .. }) => {
                f.rendered_at = Instant::now();
                f.snapshot.replace(snapshot)
            }
            _ => Some(snapshot),
        };
        if let Some(b) = spare {
            s.recycle(b);
        }
    }

    /// Drop the snapshot of `fh` (a write changed what it shows): its next read renders.
    pub fn forget_snapshot(&self, fh: u64) {
        if let Some(b) = self.with(fh, |f| f.snapshot.take()).flatten() {
            self.recycle(fh, b);
        }
    }

    /// Give back a buffer a render did not keep.
    pub fn recycle(&self, fh: u64, b: Vec<u8>) {
        let (si, _, _) = split(fh);
        self.shard(si).recycle(b);
    }

    /// Close `fh`, keeping its buffer for reuse. False when no such file is open.
    pub fn release(&self, fh: u64) -> bool {
        let (si, slot, generation) = split(fh);
        let mut s = self.shard(si);
        let Some(e) = s.slots.get_mut(slot).filter(|e| e.generation == generation) else {
            return false;
        };
        let Some(file) = e.file.take() else {
            return false;
        };
        s.free.push(slot as u32);
        if let Some(b) = file.snapshot {
            s.recycle(b);
        }
        s.shrink_if_empty();
        true
    }

    /// Empty every shard's pool, after a burst: its buffers are scattered over the pages
    /// the burst used, and each would keep its page from going back to the system.
    pub fn drain_pools(&self) {
        for i in 0..SHARDS {
            let pool = {
                let mut s = self.shard(i);
                s.pooled = 0;
                std::mem::take(&mut s.pool)
            };
            drop(pool);
        }
    }

    /// How many files are open now.
    pub fn open_count(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                let s = self.shard(i);
                s.slots.len() - s.free.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_read_release_reuses_slots_and_rejects_stale_handles() {
        let h = Handles::default();
        let a = h.open(6, 0).unwrap();
        let b = h.open(8, 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(h.with(a, |f| f.node), Some(6));
        let mut buf = h.buffer(a);
        buf.extend_from_slice(b"hello");
        h.store(a, buf);
        let mut again = h.buffer(a);
        again.extend_from_slice(b"world");
        h.store(a, again);
        assert_eq!(
            h.with(a, |f| f.snapshot.clone()),
            Some(Some(b"world".to_vec()))
        );
        assert!(h.release(a));
        assert!(!h.release(a), "double release");
        assert_eq!(h.with(a, |f| f.node), None, "stale fh");
        let c = h.open(10, 0).unwrap();
        assert_ne!(c, a, "a reused slot gets a new generation");
        // the replaced and the released snapshots' buffers are reused
        assert!(h.buffer(c).capacity() >= 5);
        assert!(h.buffer(c).capacity() >= 5);
        assert_eq!(h.open_count(), 2);
        assert!(h.with(u64::MAX, |_| ()).is_none());
        assert!(!h.release(12345678));
    }

    #[test]
    fn adopted_handles_are_served_and_never_handed_out_again() {
        let h = Handles::default();
        let old = (7u64 << 32) | (3 << SHARD_BITS) | 1;
        assert!(h.adopt(old, 22));
        assert!(!h.adopt(old, 22), "slot in use");
        assert_eq!(h.with(old, |f| f.node), Some(22));
        let fresh: Vec<u64> = (0..8).map(|_| h.open(6, 1).unwrap()).collect();
        assert!(!fresh.contains(&old));
        assert!(h.release(old));
        assert_ne!(
            h.open(6, 1),
            Some(old),
            "a reused slot gets a new generation"
        );
        assert!(
            !h.adopt(u64::from(u32::MAX) << SHARD_BITS, 1),
            "past the table"
        );
    }

    #[test]
    fn many_open_files() {
        let h = Handles::default();
        let fhs: Vec<u64> = (0..10_000).map(|i| h.open(6, i).unwrap()).collect();
        assert_eq!(h.open_count(), 10_000);
        for fh in fhs {
            assert!(h.release(fh));
        }
        assert_eq!(h.open_count(), 0);
    }

    #[test]
    fn an_emptied_shard_gives_its_table_back_and_stale_handles_still_miss() {
        let h = Handles::default();
        let fhs: Vec<u64> = (0..1000).map(|_| h.open(6, 0).unwrap()).collect();
        for &fh in &fhs {
            let mut b = h.buffer(fh);
            b.resize(4000, b'x');
            h.store(fh, b);
        }
        for &fh in &fhs {
            assert!(h.release(fh));
        }
        {
            let s = h.shard(0);
            assert_eq!(s.slots.capacity(), 0, "the slot table is dropped");
            assert!(
                s.pooled <= POOL_BYTES,
                "the pool stays bounded: {}",
                s.pooled
            );
        }
        // The same slots again, with generations no stale handle carries.
        let again: Vec<u64> = (0..1000).map(|_| h.open(8, 0).unwrap()).collect();
        for fh in &fhs {
            assert_eq!(h.with(*fh, |f| f.node), None, "stale fh {fh:#x} missed");
            assert!(!again.contains(fh));
        }
    }
}
