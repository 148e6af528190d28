//! Where the bytes of published components are kept, by sha256: always on this host's
//! disk (what it compiles from), and, when hosts share a database, in its `components`
//! table too, so a host that never saw an app published can still run it.

use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use deadpool_postgres::Pool;
use sha2::Digest as _;

/// Components as `<dir>/<sha256>.wasm`, and in the shared database when there is one.
pub struct Components {
    dir: PathBuf,
    /// The database every host shares; `None` on a host of its own.
    database: Option<Pool>,
}

impl Components {
    /// Components in `dir` (created if needed), and in `database` when hosts share one.
    pub fn open(dir: PathBuf, database: Option<Pool>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Components { dir, database })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Keeps `bytes` as component `sha256`: on disk, then in the shared database, so any
    /// host can fetch them once a version naming them is recorded.
    pub async fn save(&self, sha256: &str, bytes: &Bytes) -> anyhow::Result<()> {
        self.write_local(sha256, bytes.clone()).await?;
        if let Some(database) = &self.database {
            database
                .get()
                .await
                .context("cannot get a database connection")?
                .execute(
                    "INSERT INTO components (sha256, bytes) VALUES ($1, $2) \
                     ON CONFLICT (sha256) DO NOTHING",
                    &[&sha256, &bytes.as_ref()],
                )
                .await
                .context("cannot store the component in the database")?;
        }
        Ok(())
    }

    /// The bytes of component `sha256`: the local file, or, when it is missing and hosts
    /// share a database, the database's copy, kept as the local file from then on.
    pub async fn read(&self, sha256: &str) -> anyhow::Result<Bytes> {
        let path = self.path(sha256);
        let local = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .context("the component reader panicked")?
        };
        let database = match (local, &self.database) {
            (Ok(bytes), _) => return Ok(Bytes::from(bytes)),
            (Err(e), Some(database)) if e.kind() == std::io::ErrorKind::NotFound => database,
            (Err(e), _) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let row = database
            .get()
            .await
            .context("cannot get a database connection")?
            .query_opt("SELECT bytes FROM components WHERE sha256 = $1", &[&sha256])
            .await
            .context("cannot fetch the component from the database")?
            .with_context(|| {
                format!("component {sha256} is neither on disk nor in the database")
            })?;
        let bytes = Bytes::from(row.try_get::<_, Vec<u8>>(0)?);
        self.write_local(sha256, bytes.clone()).await?;
        Ok(bytes)
    }

    /// Writes the local file of component `sha256`, atomically and durably; an existing
    /// file is the same bytes by construction, and bytes that are not are refused (a
    /// wrong file would be trusted by every later read).
    async fn write_local(&self, sha256: &str, bytes: Bytes) -> anyhow::Result<()> {
        let path = self.path(sha256);
        let sha256 = sha256.to_owned();
        tokio::task::spawn_blocking(move || {
            if path.exists() {
                return Ok(());
            }
            anyhow::ensure!(
                hex::encode(sha2::Sha256::digest(&bytes)) == sha256,
                "the bytes of component {sha256} do not match its name"
            );
            floom_runtime::write_atomically(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))
        })
        .await
        .context("the component writer panicked")?
    }
}
