//! Content-addressed bytes: input files and artifacts, named by their sha256, behind
//! the small [`Blobs`] trait. [`FsBlobs`] keeps them under `<data-dir>/blobs/`;
//! [`PgBlobs`], for hosts sharing a PostgreSQL database, keeps them there, so any host
//! serves any execution's files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Pool;
use sha2::{Digest as _, Sha256};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

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

/// Blobs in the shared database's `blobs` table, with a read-through copy on this host's
/// disk (an [`FsBlobs`]): [`Blobs::open`] gives a `File`, and a blob is fetched once per
/// host. Its calls block this thread on the database, as every [`Blobs`] call may.
pub struct PgBlobs {
    local: FsBlobs,
    pool: Pool,
    /// The runtime the pool's connections live on, which the blocking calls wait on.
    runtime: tokio::runtime::Handle,
}

impl PgBlobs {
    /// Blobs in `pool`'s database, copied under `root`; called on the runtime the pool's
    /// connections are driven by.
    pub fn open(root: PathBuf, pool: Pool) -> io::Result<Self> {
        Ok(PgBlobs {
            local: FsBlobs::open(root)?,
            pool,
            runtime: tokio::runtime::Handle::try_current().map_err(io::Error::other)?,
        })
    }

    /// Runs `sql` on a pooled connection, blocking this thread until it is done.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> io::Result<Vec<Row>> {
        self.runtime.block_on(async {
            let db = self.pool.get().await.map_err(io::Error::other)?;
            db.query(sql, params).await.map_err(io::Error::other)
        })
    }
}

impl Blobs for PgBlobs {
    /// Stored on disk first, which hashes and caps the bytes, then in the database.
    fn put(&self, reader: &mut dyn Read, max: u64) -> io::Result<Stored> {
        let stored = self.local.put(reader, max)?;
        let bytes = fs::read(self.local.path(&stored.sha256)?)?;
        self.query(
            "INSERT INTO blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
            &[&stored.sha256, &bytes],
        )?;
        Ok(stored)
    }

    fn open(&self, sha256: &str) -> io::Result<File> {
        match self.local.open(sha256) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            opened => return opened,
        }
        let rows = self.query("SELECT bytes FROM blobs WHERE sha256 = $1", &[&sha256])?;
        let Some(row) = rows.first() else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such blob"));
        };
        let bytes: Vec<u8> = row.try_get(0).map_err(io::Error::other)?;
        // Copied by their hash: bytes that do not match their name are never served.
        if self.local.put(&mut &bytes[..], u64::MAX)?.sha256 != sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the database's copy of the blob does not match its name",
            ));
        }
        self.local.open(sha256)
    }

    fn delete(&self, sha256: &str) -> io::Result<()> {
        self.query("DELETE FROM blobs WHERE sha256 = $1", &[&sha256])?;
        self.local.delete(sha256)
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
