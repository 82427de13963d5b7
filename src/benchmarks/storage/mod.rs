//! The storage kinds: the embedded blob store's writes and reads, and the
//! file system under the cold tier, measured raw (`disk_block_sweep`).

mod disk;
mod shared;
mod storage_read;
mod storage_write;

pub(super) use disk::DiskBlockSweep;
pub(super) use storage_read::StorageRead;
pub(super) use storage_write::StorageWrite;
