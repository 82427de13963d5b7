//! Memory for a model's packed weights: large anonymous mappings, backed
//! by transparent huge pages where Linux gives them, carved into the
//! matrices' arrays side by side.
//!
//! Why: a decode step streams every weight once. With 4 KiB pages the
//! weights of a 135M-parameter model are ~37 000 pages, each a TLB miss
//! (a two-dimensional walk inside a virtual machine) and a point where the
//! hardware prefetcher stops and starts again. Most of a model's matrices
//! are smaller than one 2 MiB page, so a mapping per matrix would not get
//! huge pages: they have to lie together. glibc's `malloc` asks for huge
//! pages only when a tunable is set before the process starts, and the
//! arena crates do not ask at all, so this asks itself (memmap2 maps and
//! advises; what is written here is the carving).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// A transparent huge page on x86-64 and most AArch64 kernels.
const HUGE_PAGE_BYTES: usize = 2 << 20;
/// A model's arena maps this much at a time: a 135M-parameter model fits
/// in three chunks, and the unused tail of the last one is never touched,
/// so it costs address space, not memory.
const MODEL_CHUNK_BYTES: usize = 64 << 20;
/// Every array starts on a cache line, so a kernel's 64-byte loads never
/// straddle two.
const ALIGN_BYTES: usize = 64;

/// What an arena stores: plain numbers, any bit pattern a value, no
/// pointers and no drop.
pub trait Plain: Copy + Send + Sync + 'static {}
impl Plain for i8 {}
impl Plain for u8 {}
impl Plain for f32 {}

/// One mapping, used from `base` on (its first huge-page boundary when it
/// is large enough to hold huge pages).
struct Chunk {
    /// Owns the mapping; only `base` is read through.
    _map: memmap2::MmapMut,
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by the chunk and lives as long as it;
// `base` points into it. Bytes are written only through `WeightArena::store`,
// into a range no `Slab` covers yet, and read only through slabs, so no
// byte is written while it is shared.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn map(bytes: usize) -> std::io::Result<Self> {
        let huge = bytes >= HUGE_PAGE_BYTES;
        // Room to start at a huge-page boundary wherever the mapping lands.
        let len = if huge {
            bytes.checked_add(HUGE_PAGE_BYTES)
        } else {
            Some(bytes)
        }
        .ok_or_else(|| std::io::Error::other(format!("{bytes} bytes exceed the address space")))?;
        let mut map = memmap2::MmapOptions::new().len(len).map_anon()?;
        if huge {
            // Best effort: a kernel without transparent huge pages keeps
            // 4 KiB pages, which only costs speed.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        let start = map.as_mut_ptr();
        let skip = if huge {
            start.align_offset(HUGE_PAGE_BYTES).min(HUGE_PAGE_BYTES)
        } else {
            0
        };
        // SAFETY: `skip ≤ len − bytes`, inside the mapping.
        let base = unsafe { start.add(skip) };
        Ok(Self {
            _map: map,
            base,
            len: len - skip,
        })
    }
}

/// Where a model's packed arrays are stored.
pub struct WeightArena {
    chunk_bytes: usize,
    /// The chunk being filled and the bytes of it in use.
    current: Option<(Arc<Chunk>, usize)>,
}

impl WeightArena {
    /// An arena for the weights of a whole model.
    pub fn for_model() -> Self {
        Self {
            chunk_bytes: MODEL_CHUNK_BYTES,
            current: None,
        }
    }

    /// An arena for one matrix of about `bytes` (a matrix packed on its
    /// own, in tests and benchmarks).
    pub fn for_bytes(bytes: usize) -> Self {
        Self {
            chunk_bytes: bytes,
            current: None,
        }
    }

    /// Copies `items` into the arena.
    pub fn store<T: Plain>(&mut self, items: &[T]) -> std::io::Result<Slab<T>> {
        let bytes = std::mem::size_of_val(items);
        if bytes == 0 {
            return Ok(Slab::empty());
        }
        let fits = |(chunk, used): &(Arc<Chunk>, usize)| {
            used.next_multiple_of(ALIGN_BYTES)
                .checked_add(bytes)
                .is_some_and(|end| end <= chunk.len)
        };
        let (chunk, used) = match self.current.take() {
            Some(current) if fits(&current) => current,
            // The new chunk holds at least this array and the alignment
            // of the next.
            _ => {
                let need = bytes.checked_add(ALIGN_BYTES).ok_or_else(|| {
                    std::io::Error::other(format!("{bytes} bytes exceed the address space"))
                })?;
                let fresh = (Arc::new(Chunk::map(self.chunk_bytes.max(need))?), 0);
                // A mapping shorter than asked would be written past.
                if !fits(&fresh) {
                    return Err(std::io::Error::other(
                        "a mapping came back shorter than asked",
                    ));
                }
                fresh
            }
        };
        let offset = used.next_multiple_of(ALIGN_BYTES);
        // SAFETY: `[offset, offset + bytes)` lies inside the chunk (checked
        // above, or a new chunk of at least that many bytes), no slab covers
        // it (slabs are handed out at increasing offsets), `T` is plain
        // data, and `base + offset` is aligned for it (the mapping starts
        // on a page, `offset` on 64 bytes).
        unsafe {
            std::ptr::copy_nonoverlapping(
                items.as_ptr().cast::<u8>(),
                chunk.base.add(offset),
                bytes,
            );
        }
        let slab = Slab {
            chunk: Some(Arc::clone(&chunk)),
            offset,
            len: items.len(),
            items: PhantomData,
        };
        self.current = Some((chunk, offset + bytes));
        Ok(slab)
    }
}

/// An array stored in a [`WeightArena`], read as a slice; clones share it.
pub struct Slab<T> {
    chunk: Option<Arc<Chunk>>,
    offset: usize,
    len: usize,
    items: PhantomData<T>,
}

impl<T> Slab<T> {
    fn empty() -> Self {
        Self {
            chunk: None,
            offset: 0,
            len: 0,
            items: PhantomData,
        }
    }
}

impl<T> Clone for Slab<T> {
    fn clone(&self) -> Self {
        Self {
            chunk: self.chunk.clone(),
            offset: self.offset,
            len: self.len,
            items: PhantomData,
        }
    }
}

impl<T: Plain> Deref for Slab<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.chunk {
            None => &[],
            // SAFETY: `store` wrote `len` items of `T` at `offset`, aligned,
            // and nothing writes them again while the chunk lives.
            Some(chunk) => unsafe {
                std::slice::from_raw_parts(chunk.base.add(self.offset).cast::<T>(), self.len)
            },
        }
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slab({} × {})", self.len, std::any::type_name::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_read_back_as_stored_across_chunks() {
        let mut arena = WeightArena::for_bytes(1000);
        let bytes: Vec<u8> = (0..700).map(|i| (i % 251) as u8).collect();
        let floats: Vec<f32> = (0..300).map(|i| i as f32 * 0.5).collect();
        let a = arena.store(&bytes).unwrap();
        // Does not fit beside `a`: a second chunk.
        let b = arena.store(&floats).unwrap();
        let c = arena.store(&[-3i8, 7]).unwrap();
        let empty = arena.store::<f32>(&[]).unwrap();
        assert_eq!(&*a, &bytes[..]);
        assert_eq!(&*b, &floats[..]);
        assert_eq!(&*c, &[-3, 7]);
        assert!(empty.is_empty());
        assert_eq!(b.as_ptr() as usize % ALIGN_BYTES, 0);
        assert_eq!(c.as_ptr() as usize % ALIGN_BYTES, 0);
        drop(arena);
        // Slabs keep their chunks.
        assert_eq!(a.clone()[699], (699 % 251) as u8);
    }

    #[test]
    fn a_large_chunk_starts_on_a_huge_page() {
        let mut arena = WeightArena::for_bytes(HUGE_PAGE_BYTES * 2);
        let first = arena.store(&vec![1u8; 3 << 20]).unwrap();
        assert_eq!(first.as_ptr() as usize % HUGE_PAGE_BYTES, 0);
        assert!(first.iter().all(|&b| b == 1));
    }
}
