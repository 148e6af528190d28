//! Files in, artifacts out (SPEC section 10): each run's folders on the host's disk, the
//! collection of what it left under `/out` into the blob store, and the signed,
//! expiring URLs its files are served by.
//!
//! A run's folders are under `<data-dir>/runs/`: `in-<execution>` holds copies of its
//! input files (from their blobs), and an empty `out-N` taken from a pool of empty
//! folders (one run at a time each). The runtime shows them to the guest as `/in`
//! (read-only) and `/out` (within the artifact budget). After the run, whatever its
//! ending, [`Files::collect`] walks `out-N` without following links, stores each
//! regular file with an acceptable name as a blob, empties it for the next run and
//! removes `in-<execution>`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use floom_runtime::RunFiles;
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;

use crate::blobs::Blobs;
use crate::store::{FileKind, FileRecord, Millis, now_ms};

/// Longest artifact name (its path below `/out`), in bytes.
const MAX_NAME: usize = 1024;
/// Deepest folder nesting collected below `/out`.
const MAX_DEPTH: usize = 16;

/// How files are kept and served.
#[derive(Debug, Clone, Copy)]
pub struct FilesConfig {
    /// Largest run request carrying files (`--max-upload-mb`, 64 MiB).
    pub max_upload_bytes: u64,
    /// How long a signed URL stays valid (`--artifact-url-ttl-s`, 1 h).
    pub url_ttl: Duration,
    /// How long input files and artifacts are kept (`--artifact-retention-days`, 30).
    pub retention: Duration,
    /// Most artifacts collected from one run (the runtime's file cap, 1,000).
    pub max_artifacts: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_upload_bytes: 64 << 20,
            url_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            max_artifacts: 1000,
        }
    }
}

/// One run's folders on the host's disk, from [`Files::prepare`] to [`Files::collect`].
#[derive(Debug)]
pub struct RunFolders {
    /// Shown as `/out`; `None` once collected.
    output: Option<PathBuf>,
    /// Shown as `/in`, when the run has input files.
    input: Option<PathBuf>,
}

impl RunFolders {
    /// The folders as the runtime takes them.
    pub fn run_files(&self) -> Option<RunFiles> {
        Some(RunFiles {
            input: self.input.clone(),
            output: self.output.clone()?,
        })
    }
}

/// Empties `dir` (links are removed, never followed).
fn empty_folder(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Makes `folder` with copies of the input files `inputs`.
fn copy_inputs(blobs: &Arc<dyn Blobs>, folder: &Path, inputs: &[FileRecord]) -> io::Result<()> {
    fs::create_dir(folder)?;
    for file in inputs {
        let mut from = blobs.open(&file.sha256)?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(folder.join(&file.name))?;
        io::copy(&mut from, &mut to)?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run folders, the blob store and URL signing.
pub struct Files {
    blobs: Arc<dyn Blobs>,
    runs: PathBuf,
    /// Empty output folders, ready for the next run: each is handed to one run at a time.
    free: Mutex<Vec<PathBuf>>,
    next_slot: AtomicU64,
    url_key: Vec<u8>,
    /// Sizes, lifetimes and caps.
    pub config: FilesConfig,
}

/// An input file or artifact as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Listed {
    /// Its path below `/in` or `/out`.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Media type.
    pub content_type: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// A signed URL that serves it without other credentials until it expires.
    pub url: String,
}

impl Files {
    /// Files under `data_dir`: blobs in `blobs`, run folders in `runs/` (emptied: what a
    /// killed server left there belongs to no run any more), the URL key in
    /// `artifact-url-key` (generated at first start, mode 0600).
    pub fn open(
        data_dir: &Path,
        blobs: Arc<dyn Blobs>,
        config: FilesConfig,
    ) -> anyhow::Result<Self> {
        let runs = data_dir.join("runs");
        match fs::remove_dir_all(&runs) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot clear {}", runs.display()));
            }
            _ => {}
        }
        fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
        let key = crate::crypto::load_key(
            "FLOOM_ARTIFACT_URL_KEY",
            &data_dir.join("artifact-url-key"),
            crate::api::auth::random_token,
            crate::crypto::WhenEmpty::Regenerate,
        )?;
        Ok(Files {
            blobs,
            runs,
            free: Mutex::new(Vec::new()),
            next_slot: AtomicU64::new(0),
            url_key: key.value.into_bytes(),
            config,
        })
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn Blobs> {
        &self.blobs
    }

    /// An empty file for scratch work, already unlinked: it goes when it is closed.
    pub fn scratch_file(&self) -> io::Result<File> {
        let path = self
            .runs
            .join(format!(".scratch-{}", uuid::Uuid::now_v7().simple()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        fs::remove_file(&path)?;
        Ok(file)
    }

    /// Gives execution `id` its folders: an empty output folder (a reused one when one
    /// is free, so a run that writes nothing costs no `mkdir` or `rmdir`: each took
    /// ~120 µs on this disk), and, when it has input files, an input folder with copies
    /// of them.
    pub async fn prepare(&self, id: &str, inputs: Vec<FileRecord>) -> anyhow::Result<RunFolders> {
        let reused = lock(&self.free).pop();
        if reused.is_some() && inputs.is_empty() {
            return Ok(RunFolders {
                output: reused,
                input: None,
            });
        }
        let next = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let runs = self.runs.clone();
        let blobs = self.blobs.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            let output = match reused {
                Some(output) => output,
                None => {
                    let output = runs.join(format!("out-{next}"));
                    fs::create_dir(&output)?;
                    output
                }
            };
            let input = if inputs.is_empty() {
                None
            } else {
                // Named by this call, not by the execution: two attempts of one
                // execution can overlap on a host (one whose lease was lost still
                // ending while its retry starts), and each must keep its own folder.
                let input = runs.join(format!("in-{next}"));
                let copied = copy_inputs(&blobs, &input, &inputs);
                if let Err(e) = copied {
                    let _ = fs::remove_dir_all(&input);
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot copy the input files of {id}")));
                }
                Some(input)
            };
            Ok(RunFolders {
                output: Some(output),
                input,
            })
        })
        .await?
    }

    /// Stores what execution `id` left in its output folder as its artifacts (links,
    /// special files and unacceptable names are skipped), empties the folder for the
    /// next run and removes the input folder. `wrote` false (the runtime charged the run
    /// nothing under `/out`, so it made nothing there) skips looking.
    pub async fn collect(
        &self,
        id: &str,
        mut folders: RunFolders,
        wrote: bool,
    ) -> anyhow::Result<Vec<FileRecord>> {
        let Some(output) = folders.output.take() else {
            return Ok(Vec::new());
        };
        // The common case, on this thread: nothing written, nothing to hand off.
        let empty =
            !wrote || fs::read_dir(&output).is_ok_and(|mut entries| entries.next().is_none());
        if empty && folders.input.is_none() {
            lock(&self.free).push(output);
            return Ok(Vec::new());
        }
        let blobs = self.blobs.clone();
        let max = self.config.max_artifacts;
        let id = id.to_owned();
        let input = folders.input.take();
        let (records, output) = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&output, "", 0, max, &mut found);
            let now = now_ms();
            let mut records = Vec::with_capacity(found.len());
            for (name, mut file) in found {
                let stored = match blobs.put(&mut file, u64::MAX) {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(execution = %id, artifact = %name, "cannot store an artifact: {e}");
                        continue;
                    }
                };
                records.push(FileRecord {
                    execution_id: id.clone(),
                    kind: FileKind::Artifact,
                    content_type: content_type(&name).to_owned(),
                    name,
                    size: i64::try_from(stored.size).unwrap_or(i64::MAX),
                    sha256: stored.sha256,
                    created_at: now,
                });
            }
            if let Some(input) = input {
                let _ = fs::remove_dir_all(input);
            }
            // Reused only once it is certainly empty again; otherwise it goes.
            let reusable = empty_folder(&output).is_ok();
            if !reusable {
                tracing::warn!(execution = %id, "the run's output folder could not be emptied");
                let _ = fs::remove_dir_all(&output);
            }
            (records, reusable.then_some(output))
        })
        .await?;
        if let Some(output) = output {
            lock(&self.free).push(output);
        }
        Ok(records)
    }

    /// The signature of a URL to `id`'s file, valid until `expires` (Unix seconds).
    fn signature(&self, id: &str, kind: FileKind, name: &str, expires: u64) -> String {
        // The key is any length; HMAC accepts every length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("HMAC takes any key");
        mac.update(format!("{id}\n{}\n{name}\n{expires}", kind.as_str()).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` signs `id`'s file until `expires`, and that is not past.
    pub fn verify(
        &self,
        id: &str,
        kind: FileKind,
        name: &str,
        expires: u64,
        signature: &str,
    ) -> bool {
        let now = now_ms() / 1000;
        if u64::try_from(now).unwrap_or(u64::MAX) > expires {
            return false;
        }
        let expected = self.signature(id, kind, name, expires);
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into()
    }

    /// `record` as listed, with a URL signed for `ttl` (at most the configured one).
    pub fn listed(&self, record: &FileRecord, ttl: Option<Duration>) -> Listed {
        let ttl = ttl.map_or(self.config.url_ttl, |t| t.min(self.config.url_ttl));
        let expires = u64::try_from(now_ms() / 1000).unwrap_or(0) + ttl.as_secs();
        let signature = self.signature(&record.execution_id, record.kind, &record.name, expires);
        Listed {
            url: format!(
                "{}?expires={expires}&sig={signature}",
                file_path(&record.execution_id, record.kind, &record.name)
            ),
            name: record.name.clone(),
            size: record.size,
            content_type: record.content_type.clone(),
            sha256: record.sha256.clone(),
        }
    }

    /// Deletes the files recorded before the retention period and the blobs no longer
    /// named; returns how many blobs went.
    pub async fn sweep(&self, store: &crate::store::DynStore) -> anyhow::Result<usize> {
        let cutoff = now_ms().saturating_sub(
            Millis::try_from(self.config.retention.as_millis()).unwrap_or(Millis::MAX),
        );
        let mut deleted = 0;
        loop {
            let blobs = store.expire_files(cutoff).await?;
            if blobs.is_empty() {
                return Ok(deleted);
            }
            deleted += blobs.len();
            let store = self.blobs.clone();
            tokio::task::spawn_blocking(move || {
                for sha256 in blobs {
                    if let Err(e) = store.delete(&sha256) {
                        tracing::warn!(blob = %sha256, "cannot delete an expired blob: {e}");
                    }
                }
            })
            .await?;
        }
    }
}

/// The API path of an execution's file.
pub fn file_path(id: &str, kind: FileKind, name: &str) -> String {
    let folder = match kind {
        FileKind::Input => "inputs",
        FileKind::Artifact => "artifacts",
    };
    format!("/api/executions/{id}/{folder}/{}", encode_path(name))
}

/// Percent-encodes everything in `name` but unreserved characters and `/`.
pub fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `part` may be one component of an artifact's or input's name: not empty,
/// `.` or `..`, without a separator or control character.
pub fn is_name_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part.len() <= 255
        && !part
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
}

/// Whether `name` is an acceptable `/`-separated artifact name.
pub fn is_name(name: &str) -> bool {
    name.len() <= MAX_NAME && name.split('/').all(is_name_part)
}

/// Collects the regular files below `dir` (as `prefix`-ed names) into `found`, never
/// following a link, up to `max` files and [`MAX_DEPTH`] levels.
fn walk(dir: &Path, prefix: &str, depth: usize, max: usize, found: &mut Vec<(String, File)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if found.len() >= max {
            return;
        }
        let Some(part) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_name_part(&part) {
            continue;
        }
        let name = if prefix.is_empty() {
            part
        } else {
            format!("{prefix}/{part}")
        };
        if name.len() > MAX_NAME {
            continue;
        }
        // `file_type` is the entry's own type (lstat): a link is a link, never its target.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth + 1 < MAX_DEPTH {
            walk(&entry.path(), &name, depth + 1, max, found);
        } else if kind.is_file() {
            // O_NOFOLLOW too: a name swapped for a link since the listing is refused.
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(entry.path());
            if let Ok(file) = opened
                && file.metadata().is_ok_and(|m| m.is_file())
            {
                found.push((name, file));
            }
        }
    }
}

/// A media type from a file name's extension; `application/octet-stream` otherwise.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_name("report.txt") && is_name("sub/nested.json") && is_name("a b.csv"));
        for bad in [
            "",
            ".",
            "..",
            "a/../b",
            "a//b",
            "/abs",
            "tab\there",
            "new\nline",
            "back\\slash",
        ] {
            assert!(!is_name(bad), "{bad:?}");
        }
        assert_eq!(encode_path("sub/a b%.txt"), "sub/a%20b%25.txt");
        assert_eq!(content_type("X.CSV"), "text/csv; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
