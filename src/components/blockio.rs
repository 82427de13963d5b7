//! Block-sized file I/O, buffered or direct (O_DIRECT: no page cache), with
//! the aligned buffers direct I/O needs. Shared by the KV cache's cold tier
//! and the disk sweep that measures the same file system raw.

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Direct I/O needs offsets, lengths and buffers aligned to the logical
/// block size; 4 KiB covers the disks and file systems in use today.
pub const IO_ALIGN: usize = 4096;

pub fn align_up(n: usize) -> usize {
    n.div_ceil(IO_ALIGN) * IO_ALIGN
}

/// A zeroed byte buffer aligned to [`IO_ALIGN`]. Written by hand because a
/// `Vec<u8>` cannot promise alignment, and this is all that is needed.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn zeroed(len: usize) -> Self {
        let len = align_up(len.max(1));
        let layout = Layout::from_size_align(len, IO_ALIGN)
            .expect("IO_ALIGN is a power of two and len is bounded");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { ptr, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised (zeroed) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this exact layout.
        unsafe {
            alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len, IO_ALIGN),
            )
        }
    }
}

/// Buffered I/O goes through the page cache; direct I/O bypasses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    Buffered,
    Direct,
}

/// Opens (creating if needed) a file for block I/O in the given mode.
pub fn open_block_file(path: &Path, mode: IoMode, create: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(create);
    if mode == IoMode::Direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

/// Whether the file system under `dir` accepts O_DIRECT (tmpfs does not).
pub fn direct_io_supported(dir: &Path) -> Result<(), String> {
    let probe = tempfile::Builder::new()
        .prefix(".direct-probe")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a probe file in {}: {e}", dir.display()))?;
    let file = open_block_file(probe.path(), IoMode::Direct, false)
        .map_err(|e| format!("O_DIRECT open failed on {}: {e}", dir.display()))?;
    let buf = AlignedBuf::zeroed(IO_ALIGN);
    file.write_all_at(&buf, 0)
        .map_err(|e| format!("O_DIRECT write failed on {}: {e}", dir.display()))
}

/// Asks the kernel to drop the file's cached pages, so that the next
/// buffered reads come from the device (after the data is on it).
pub fn drop_page_cache(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    file.sync_data()?;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Positioned reads kept `depth` at a time in flight: queue depth without
/// io_uring. io_uring is often refused inside containers (seccomp), and a
/// fallback to threads would be needed anyway; a pool of `pread`s reaches
/// the device's parallelism everywhere. Depth 1 reads on the caller's
/// thread, as a plain loop does.
pub struct ReadPool {
    depth: usize,
    pool: Option<rayon::ThreadPool>,
}

impl ReadPool {
    pub fn new(depth: usize) -> io::Result<Self> {
        let depth = depth.max(1);
        let pool = if depth > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(depth)
                    .thread_name(|i| format!("read-pool-{i}"))
                    .build()
                    .map_err(io::Error::other)?,
            )
        } else {
            None
        };
        Ok(Self { depth, pool })
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Reads `len` bytes at each of `offsets` into the matching `len`-byte
    /// chunk of `bufs`, then runs `each` in the reading thread on the chunk
    /// and on the matching `out_len`-byte chunk of `outs` (empty when
    /// `out_len` is 0), so that checking and decoding overlap the other
    /// reads. `None` offsets are skipped.
    #[allow(clippy::too_many_arguments)]
    pub fn read_each<E: Send>(
        &self,
        file: &File,
        offsets: &[Option<u64>],
        bufs: &mut [u8],
        len: usize,
        outs: &mut [u8],
        out_len: usize,
        each: impl Fn(usize, &[u8], &mut [u8]) -> Result<(), E> + Sync,
        io_error: impl Fn(io::Error) -> E + Sync,
    ) -> Result<(), E> {
        let mut targets: Vec<&mut [u8]> = if out_len == 0 {
            offsets.iter().map(|_| <&mut [u8]>::default()).collect()
        } else {
            outs.chunks_mut(out_len).collect()
        };
        let one = |(i, (buf, out)): (usize, (&mut [u8], &mut &mut [u8]))| -> Result<(), E> {
            let Some(offset) = offsets.get(i).copied().flatten() else {
                return Ok(());
            };
            file.read_exact_at(buf, offset).map_err(&io_error)?;
            each(i, buf, out)
        };
        let bufs = &mut bufs[..offsets.len() * len];
        match &self.pool {
            Some(pool) => {
                use rayon::prelude::*;
                pool.install(|| {
                    bufs.par_chunks_mut(len)
                        .zip(targets.par_iter_mut())
                        .enumerate()
                        .with_max_len(1)
                        .try_for_each(one)
                })
            }
            None => bufs
                .chunks_mut(len)
                .zip(targets.iter_mut())
                .enumerate()
                .try_for_each(one),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned_and_zeroed() {
        let buf = AlignedBuf::zeroed(5000);
        assert_eq!(buf.len(), 8192);
        assert_eq!(buf.as_ptr() as usize % IO_ALIGN, 0);
        assert!(buf.iter().all(|b| *b == 0));
    }
}
