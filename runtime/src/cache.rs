//! The on-disk cache of compiled components, so a restart loads apps without compiling.
//!
//! Artifacts live at `<dir>/<engine key>/<component sha256>.cwasm`. The engine key is a
//! digest of wasmtime's precompile compatibility hash (its version and every setting
//! that changes generated code), so a different engine never sees another's artifacts.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// Hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Feeds `Hash` output into sha256, giving a digest that is stable across processes and
/// Rust versions (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// A short, stable name for everything about `engine` that decides whether a compiled
/// artifact fits it.
pub(crate) fn engine_key(engine: &wasmtime::Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// A directory of compiled components.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub(crate) fn open(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the compile cache at {}", dir.display()))?;
        Ok(ArtifactCache { dir })
    }

    fn path(&self, engine_key: &str, sha256: &str) -> PathBuf {
        self.dir.join(engine_key).join(format!("{sha256}.cwasm"))
    }

    /// The cached artifact for `sha256`, if there is a usable one.
    pub(crate) fn load(
        &self,
        engine: &wasmtime::Engine,
        engine_key: &str,
        sha256: &str,
    ) -> Option<Component> {
        let path = self.path(engine_key, sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` runs the native code in the file, so the file must be
        // one wasmtime wrote. Only this cache writes into its directory (atomically, via a
        // rename), the directory belongs to the operator, and the path is keyed by the
        // engine's compatibility hash; wasmtime also checks the header and version.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {e:#}");
                None
            }
        }
    }

    /// Writes the artifact for `sha256`. A failure only costs a compile on the next
    /// start, so it is logged, not returned.
    pub(crate) fn store(&self, engine_key: &str, sha256: &str, component: &Component) {
        let path = self.path(engine_key, sha256);
        if let Err(e) = write_artifact(&path, component) {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e:#}");
        }
    }
}

fn write_artifact(path: &Path, component: &Component) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    let dir = path.parent().context("artifact path has no parent")?;
    std::fs::create_dir_all(dir)?;
    crate::atomic_file::write_atomically(path, &bytes)?;
    Ok(())
}
