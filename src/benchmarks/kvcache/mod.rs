//! The KV cache kinds: how fast the hot tier stores blocks
//! (`kv_cache_store`) and how a decoding trace behaves once the context
//! outgrows it (`kv_cache_access`), over the geometry they share.

mod kv_cache_access;
mod kv_cache_store;
mod kv_geometry;

pub(super) use kv_cache_access::KvCacheAccess;
pub(super) use kv_cache_store::KvCacheStore;
