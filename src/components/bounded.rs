//! Reading a file someone else wrote (a tokenizer, a prompts file, a
//! corpus) with a bound on its size, checked before anything is read: a
//! file of 50 GB named by mistake is an error that says so, not an
//! exhausted machine.

use std::io::Read;
use std::path::{Path, PathBuf};

/// What a bounded read can say.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds {bytes} bytes, more than the {limit_mib} MiB read from a file of this kind"
    )]
    TooLarge {
        path: PathBuf,
        bytes: u64,
        limit_mib: u64,
    },
    #[error("{path} is not UTF-8 text: {source}")]
    NotText {
        path: PathBuf,
        source: std::string::FromUtf8Error,
    },
}

/// The file's bytes, refused unread past `limit_bytes` (and never reading
/// past it, should the file grow meanwhile).
pub fn read_bounded(path: &Path, limit_bytes: u64) -> Result<Vec<u8>, BoundedReadError> {
    let io = |source| BoundedReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |bytes| BoundedReadError::TooLarge {
        path: path.to_path_buf(),
        bytes,
        limit_mib: limit_bytes >> 20,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    if length > limit_bytes {
        return Err(too_large(length));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    file.take(limit_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit_bytes: u64) -> Result<String, BoundedReadError> {
    String::from_utf8(read_bounded(path, limit_bytes)?).map_err(|source| {
        BoundedReadError::NotText {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_its_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "x".repeat(2048)).unwrap();
        assert_eq!(read_text_bounded(&path, 4096).unwrap().len(), 2048);
        let e = read_bounded(&path, 1 << 10).unwrap_err();
        assert!(
            matches!(e, BoundedReadError::TooLarge { bytes: 2048, .. }),
            "{e}"
        );
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text_bounded(&path, 4096).unwrap_err(),
            BoundedReadError::NotText { .. }
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 10).unwrap_err(),
            BoundedReadError::Io { .. }
        ));
    }
}
