//! Content-addressed bytes: input files and artifacts, named by their sha256, behind
//! the small [`Blobs`] trait so a database-backed store can stand in when the server
//! scales out. [`FsBlobs`] keeps them under `<data-dir>/blobs/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

/// A blob just stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Hex sha256 of the bytes: the blob's name.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Where the bytes of input files and artifacts are kept, by sha256. The calls block:
/// run them off the async executor.
pub trait Blobs: Send + Sync + 'static {
    /// Stores what `reader` yields, at most `max` bytes (more is an error and stores
    /// nothing). Storing bytes already there stores them once.
    fn put(&self, reader: &mut dyn Read, max: u64) -> io::Result<Stored>;
    /// Opens a blob for reading; `NotFound` when there is none by that name.
    fn open(&self, sha256: &str) -> io::Result<File>;
    /// Deletes a blob; deleting one that is gone is not an error.
    fn delete(&self, sha256: &str) -> io::Result<()>;
}

/// Blobs as files, `blobs/ab/abcdef...`, each written to a temporary file in the same
/// folder, synced, then renamed into place: a reader never sees a torn blob.
pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    /// Blobs under `root`, created if needed.
    pub fn open(root: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(FsBlobs { root })
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        // Names come from our own hashes, but a wrong one must never become a path.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a sha256 name",
            ));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }
}

impl Blobs for FsBlobs {
    fn put(&self, reader: &mut dyn Read, max: u64) -> io::Result<Stored> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = self.root.join(format!(
            ".put.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buffer = vec![0; 64 << 10];
            loop {
                let n = reader.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > max {
                    return Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        format!("over the {max} byte limit"),
                    ));
                }
                hasher.update(&buffer[..n]);
                file.write_all(&buffer[..n])?;
            }
            file.sync_all()?;
            let sha256 = hex::encode(hasher.finalize());
            let path = self.path(&sha256)?;
            let dir = path.parent().unwrap_or(&self.root);
            fs::create_dir_all(dir)?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()?;
            Ok(Stored { sha256, size })
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    fn open(&self, sha256: &str) -> io::Result<File> {
        File::open(self.path(sha256)?)
    }

    fn delete(&self, sha256: &str) -> io::Result<()> {
        match fs::remove_file(self.path(sha256)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_bounded_and_deletable() {
        let dir = std::env::temp_dir().join(format!("floom-blobs-{}", std::process::id()));
        let blobs = FsBlobs::open(dir.clone()).unwrap();
        let a = blobs.put(&mut &b"hello"[..], 10).unwrap();
        let b = blobs.put(&mut &b"hello"[..], 10).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, 5);
        let mut back = String::new();
        blobs
            .open(&a.sha256)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "hello");
        assert!(blobs.put(&mut &[0u8; 11][..], 10).is_err());
        assert!(blobs.open("../../etc/passwd").is_err());
        blobs.delete(&a.sha256).unwrap();
        blobs.delete(&a.sha256).unwrap();
        assert_eq!(
            blobs.open(&a.sha256).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // Only the two-letter folders are left: no temporaries.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.iter().all(|n| n.len() == 2), "{left:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
