//! A run's folders: its input files read-only under `/in`, and a writable `/out` whose
//! contents the host collects as the run's artifacts, held to a budget a hostile guest
//! cannot pass ([`Caps::artifact_bytes`](crate::Caps::artifact_bytes) and
//! [`Caps::artifact_files`](crate::Caps::artifact_files)).
//!
//! wasmtime-wasi gives a preopened folder to the guest with no size limit: a guest could
//! fill the host's disk. So every call through which a guest can make the disk hold more
//! is re-defined in the linker (after wasmtime-wasi's own) to charge a per-run
//! [`Ledger`] before it runs, then call wasmtime-wasi's implementation:
//!
//! - `[method]descriptor.write` (a positioned write, `pwrite`), `set-size`, and every
//!   write through the streams of `write-via-stream` and `append-via-stream` (how
//!   wasi-libc writes, so Rust's `std::fs` and CPython's `open()`): what the write would
//!   add past the file's high-water size. A file's high-water size only grows, so
//!   truncating and rewriting is free, sparse writes are charged as if filled, and the
//!   folder can never hold more than the budget, at any moment, not only at the end.
//! - `open-at` creating a file and `create-directory-at`: one entry against the file cap,
//!   and [`ENTRY_BYTES`] (a disk block) against the budget.
//! - `symlink-at` and `link-at` are refused: a link could point the host's collection at
//!   something that is not the run's, and a hard link counts one inode twice.
//!
//! Charges are never given back (deleting a file does not refund it), so no drop hook is
//! needed. A refused call returns a filesystem error the guest sees (`insufficient-space`
//! for bytes, `quota` for entries): the run goes on and ends as the app decides, and a
//! host notice in its logs says which limit was reached.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, WasiFilesystemCtxView, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsResult, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, OpenMode};

use crate::outcome::FoldersUnavailable;
use crate::output::EventSink;

/// The instance wasmtime-wasi 48 registers `wasi:filesystem/types` under; components
/// importing any 0.2.x version are linked to it. The files tests fail if an upgrade
/// changes it and the charges silently stop applying.
const TYPES: &str = "wasi:filesystem/types@0.2.12";
/// Where wasmtime-wasi 48 registers `wasi:filesystem/preopens`, whose `get-directories`
/// is re-defined to open a run's folders only when the guest first asks for them.
const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

/// What each file or folder a guest creates costs against the byte budget: the disk
/// block it takes even when empty, so a folder of many small files stays within the
/// budget on disk too.
pub const ENTRY_BYTES: u64 = 4096;

/// The two folders a run gets, on the host's disk. The host creates them (empty for
/// `output`) and removes them after the run.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// Shown read-only as `/in`: the run's input files, if it has any.
    pub input: Option<PathBuf>,
    /// Shown writable as `/out`, within the budget.
    pub output: PathBuf,
}

/// Which limit stopped a guest's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Bytes,
    Entries,
}

/// What a run's `/out` has been charged, against its limits.
pub(crate) struct Ledger {
    limit: u64,
    used: u64,
    max_entries: u64,
    entries: u64,
    /// The largest size each file (by device and inode) has been charged for. Holds at
    /// most the entries the guest created, which the file cap bounds.
    high_water: HashMap<(u64, u64), u64>,
    /// Each kind of refusal is noticed once in the run's logs.
    noticed: Vec<Refusal>,
    sink: EventSink,
}

/// A [`Ledger`] shared by the store and the output streams it hands out.
pub(crate) type SharedLedger = Arc<Mutex<Ledger>>;

impl Ledger {
    pub(crate) fn new(limit: u64, max_entries: u64, sink: EventSink) -> SharedLedger {
        Arc::new(Mutex::new(Ledger {
            limit,
            used: 0,
            max_entries,
            entries: 0,
            high_water: HashMap::new(),
            noticed: Vec::new(),
            sink,
        }))
    }

    fn refuse(&mut self, why: Refusal) -> ErrorCode {
        if !self.noticed.contains(&why) {
            self.noticed.push(why);
            self.sink.notice(match why {
                Refusal::Bytes => format!(
                    "a write under /out was refused: the run's {} byte artifact budget is used up",
                    self.limit
                ),
                Refusal::Entries => format!(
                    "a file or folder under /out was refused: the run may create {} of them",
                    self.max_entries
                ),
            });
        }
        match why {
            Refusal::Bytes => ErrorCode::InsufficientSpace,
            Refusal::Entries => ErrorCode::Quota,
        }
    }

    /// Charges a write that ends at `end` in the file `key`, whose size is `size` now.
    fn grow(&mut self, key: (u64, u64), size: u64, end: u64) -> Result<(), ErrorCode> {
        let high_water = *self.high_water.entry(key).or_insert(size);
        let growth = end.saturating_sub(high_water);
        if growth == 0 {
            return Ok(());
        }
        let used = self.used.saturating_add(growth);
        if used > self.limit {
            return Err(self.refuse(Refusal::Bytes));
        }
        self.used = used;
        self.high_water.insert(key, end);
        Ok(())
    }

    /// Charges `bytes` more to the file `key` (an append: it always grows the file).
    fn append(&mut self, key: (u64, u64), bytes: u64) -> Result<(), ErrorCode> {
        let high_water = self.high_water.get(&key).copied().unwrap_or(0);
        self.grow(key, high_water, high_water.saturating_add(bytes))
    }

    /// Whether one more entry fits; charges it if so.
    fn create(&mut self) -> Result<(), ErrorCode> {
        if !self.has_room_for_entry() {
            return Err(self.refuse_entry());
        }
        self.entries += 1;
        self.used += ENTRY_BYTES;
        Ok(())
    }

    fn uncreate(&mut self) {
        self.entries = self.entries.saturating_sub(1);
        self.used = self.used.saturating_sub(ENTRY_BYTES);
    }

    /// The refusal of an entry when [`Ledger::has_room_for_entry`] says there is none.
    fn refuse_entry(&mut self) -> ErrorCode {
        if self.entries >= self.max_entries {
            self.refuse(Refusal::Entries)
        } else {
            self.refuse(Refusal::Bytes)
        }
    }

    /// Whether one more entry would fit, without charging it.
    fn has_room_for_entry(&self) -> bool {
        self.entries < self.max_entries && self.used.saturating_add(ENTRY_BYTES) <= self.limit
    }
}

/// Bytes `ledger` has charged so far.
pub(crate) fn used(ledger: &SharedLedger) -> u64 {
    lock(ledger).used
}

fn lock(ledger: &SharedLedger) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// Store data whose filesystem use is charged against a [`Ledger`].
pub(crate) trait FilesBudgeted: wasmtime_wasi::WasiView + 'static {
    fn ledger(&self) -> &SharedLedger;
    fn preopens(&mut self) -> &mut Preopens;
}

/// A run's folders as its guest's preopens, opened the first time the guest lists them
/// (wasi-libc does on its first path call). Most runs touch no file, and opening `/out`
/// for each before it started cost every run an `openat` and a `close`: ~8 % of a guest
/// thread's time for `hello` at c=16.
pub(crate) struct Preopens {
    files: Option<RunFiles>,
    opened: Option<Vec<(Dir, String)>>,
}

impl Preopens {
    /// `/in` read-only (when there are input files) and `/out` writable, once opened.
    pub(crate) fn new(files: Option<RunFiles>) -> Self {
        Preopens {
            files,
            opened: None,
        }
    }

    /// The folders, opened at the first call.
    fn get(&mut self) -> wasmtime::Result<Vec<(Dir, String)>> {
        if let Some(opened) = &self.opened {
            return Ok(opened.clone());
        }
        let mut opened = Vec::with_capacity(2);
        if let Some(files) = &self.files {
            if let Some(input) = &files.input {
                opened.push((open_dir(input, FsPerms::ReadOnly)?, "/in".to_owned()));
            }
            opened.push((
                open_dir(&files.output, FsPerms::ReadWrite)?,
                "/out".to_owned(),
            ));
        }
        Ok(self.opened.insert(opened).clone())
    }
}

/// Opens `path` as wasmtime-wasi's `WasiCtxBuilder::preopened_dir` does: a path-only
/// handle on a directory, through which every access is confined beneath it.
fn open_dir(path: &Path, perms: FsPerms) -> wasmtime::Result<Dir> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FoldersUnavailable(format!("{}: {e}", path.display())))?;
    let open_mode = match perms {
        FsPerms::ReadOnly => OpenMode::READ,
        FsPerms::ReadWrite => OpenMode::READ | OpenMode::WRITE,
    };
    // File calls run on the guest's thread: the folders are on local disk (see the
    // sandbox's WASI context).
    Ok(Dir::new(fd.into(), perms, open_mode, true))
}

/// The identity and current size of the file behind `fd`, if it is a writable file.
fn writable_file(view: &WasiFilesystemCtxView<'_>, fd: &Resource<Descriptor>) -> Option<FileKey> {
    match view.table.get(fd).ok()? {
        Descriptor::File(f) if !f.perms.write_not_permitted() => {
            let meta = f.file.metadata().ok()?;
            Some(FileKey {
                key: (meta.dev(), meta.ino()),
                size: meta.len(),
            })
        }
        _ => None,
    }
}

struct FileKey {
    key: (u64, u64),
    size: u64,
}

/// A wasmtime-wasi result as the guest receives it: its error code, or a trap.
fn to_guest<R>(result: FsResult<R>) -> wasmtime::Result<(Result<R, ErrorCode>,)> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

fn refused<R>(code: ErrorCode) -> wasmtime::Result<(Result<R, ErrorCode>,)> {
    Ok((Err(code),))
}

/// Re-defines the calls listed in the module docs, after wasmtime-wasi's, in `linker`.
pub(crate) fn add_to_linker<T: FilesBudgeted>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;

    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, T>,
         (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let ledger = state.ledger().clone();
                let mut view = state.filesystem();
                if let Some(file) = writable_file(&view, &fd) {
                    let end = offset.saturating_add(buffer.len() as u64);
                    if let Err(code) = lock(&ledger).grow(file.key, file.size, end) {
                        return refused(code);
                    }
                }
                to_guest(view.write(fd, buffer, offset).await)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, T>, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let ledger = state.ledger().clone();
                let mut view = state.filesystem();
                if let Some(file) = writable_file(&view, &fd)
                    && let Err(code) = lock(&ledger).grow(file.key, file.size, size)
                {
                    return refused(code);
                }
                to_guest(view.set_size(fd, size).await)
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, T>, (fd, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let ledger = state.ledger().clone();
            let mut view = state.filesystem();
            let file = writable_file(&view, &fd);
            let stream = view.write_via_stream(fd, offset);
            budget_stream(&mut view, stream, file, ledger, Some(offset))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, T>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let ledger = state.ledger().clone();
            let mut view = state.filesystem();
            let file = writable_file(&view, &fd);
            let stream = view.append_via_stream(fd);
            budget_stream(&mut view, stream, file, ledger, None)
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, path_flags, path, oflags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                let ledger = state.ledger().clone();
                let mut view = state.filesystem();
                let mut oflags = oflags;
                let creates = oflags.contains(OpenFlags::CREATE);
                if creates && !lock(&ledger).has_room_for_entry() {
                    // At the cap an existing file may still be opened, a new one not: open
                    // without CREATE, one call either way (a guest looping on creations
                    // must not cost the host two per try).
                    if oflags.contains(OpenFlags::EXCLUSIVE) {
                        return refused(lock(&ledger).refuse_entry());
                    }
                    oflags &= !OpenFlags::CREATE;
                }
                let opened = match view.open_at(fd, path_flags, path, oflags, flags).await {
                    Ok(opened) => opened,
                    Err(e) => {
                        let code = e.downcast()?;
                        if creates
                            && code == ErrorCode::NoEntry
                            && !oflags.contains(OpenFlags::CREATE)
                        {
                            return refused(lock(&ledger).refuse_entry());
                        }
                        return refused(code);
                    }
                };
                let creates = oflags.contains(OpenFlags::CREATE);
                if creates && let Some(file) = writable_file(&view, &opened) {
                    let mut ledger = lock(&ledger);
                    // An inode never seen is one this open created: the folder starts
                    // empty, and links (which could add names for old inodes) are refused.
                    if !ledger.high_water.contains_key(&file.key) {
                        if let Err(code) = ledger.create() {
                            drop(ledger);
                            HostDescriptor::drop(&mut view, opened)?;
                            return refused(code);
                        }
                        ledger.high_water.insert(file.key, file.size);
                    }
                }
                Ok((Ok(opened),))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, T>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let ledger = state.ledger().clone();
                let mut view = state.filesystem();
                if let Err(code) = lock(&ledger).create() {
                    return refused(code);
                }
                let created = view.create_directory_at(fd, path).await;
                if created.is_err() {
                    // Nothing was made (it existed, or the path was refused).
                    lock(&ledger).uncreate();
                }
                to_guest(created)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |_store: StoreContextMut<'_, T>,
         (_fd, _old, _new): (Resource<Descriptor>, String, String)| {
            Box::new(async move { refused::<()>(ErrorCode::NotPermitted) })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        |_store: StoreContextMut<'_, T>,
         (_fd, _flags, _old, _new_fd, _new): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| { Box::new(async move { refused::<()>(ErrorCode::NotPermitted) }) },
    )?;
    linker.instance(PREOPENS)?.func_wrap(
        "get-directories",
        |mut store: StoreContextMut<'_, T>, (): ()| {
            let state = store.data_mut();
            let folders = state.preopens().get()?;
            let view = state.filesystem();
            let mut listed = Vec::with_capacity(folders.len());
            for (dir, name) in folders {
                listed.push((view.table.push(Descriptor::Dir(dir))?, name));
            }
            Ok((listed,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Wraps the stream wasmtime-wasi made (already in the table) so each write is charged.
fn budget_stream(
    view: &mut WasiFilesystemCtxView<'_>,
    stream: FsResult<Resource<DynOutputStream>>,
    file: Option<FileKey>,
    ledger: SharedLedger,
    offset: Option<u64>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => return refused(e.downcast()?),
    };
    if let Some(file) = file {
        let slot = view.table.get_mut(&stream)?;
        let inner = std::mem::replace(slot, Box::new(wasmtime_wasi::p2::pipe::ClosedOutputStream));
        *slot = Box::new(BudgetedStream {
            inner,
            ledger,
            key: file.key,
            size: file.size,
            position: offset,
        });
    }
    Ok((Ok(stream),))
}

/// A file's output stream whose every write is charged before it is handed on.
struct BudgetedStream {
    inner: DynOutputStream,
    ledger: SharedLedger,
    key: (u64, u64),
    /// The file's size when the stream was opened (its high-water mark if first seen).
    size: u64,
    /// Where the next write lands; `None` for an append stream (always at the end).
    position: Option<u64>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for BudgetedStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for BudgetedStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let len = bytes.len() as u64;
        let charged = match self.position {
            Some(position) => {
                let end = position.saturating_add(len);
                lock(&self.ledger).grow(self.key, self.size, end).map(|()| {
                    self.position = Some(end);
                })
            }
            None => lock(&self.ledger).append(self.key, len),
        };
        if charged.is_err() {
            // ENOSPC: wasi-libc reads it back through `filesystem-error-code`.
            return Err(StreamError::LastOperationFailed(
                std::io::Error::from_raw_os_error(ENOSPC).into(),
            ));
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

/// `ENOSPC` on Linux, the only host the runtime supports.
const ENOSPC: i32 = 28;

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(limit: u64, entries: u64) -> SharedLedger {
        Ledger::new(limit, entries, EventSink::new(None, 10))
    }

    /// Nothing is opened until the guest lists its preopens, then once for the run; a
    /// folder gone by then is an error that names it.
    #[test]
    fn folders_are_opened_once_when_first_listed() {
        let base = std::env::temp_dir().join(format!("floom-preopens-{}", std::process::id()));
        let (input, output) = (base.join("in"), base.join("out"));
        std::fs::create_dir_all(&input).unwrap();
        std::fs::create_dir_all(&output).unwrap();
        let files = RunFiles {
            input: Some(input.clone()),
            output: output.clone(),
        };
        let mut preopens = Preopens::new(Some(files.clone()));
        let first = preopens.get().unwrap();
        let names: Vec<&str> = first.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names, ["/in", "/out"]);
        assert_eq!(first[0].0.perms, FsPerms::ReadOnly);
        assert_eq!(first[1].0.perms, FsPerms::ReadWrite);
        assert!(Arc::ptr_eq(
            &first[1].0.dir,
            &preopens.get().unwrap()[1].0.dir
        ));

        let mut unopened = Preopens::new(Some(files));
        std::fs::remove_dir_all(&base).unwrap();
        let error = unopened.get().err().expect("the folders are gone");
        let gone = error
            .downcast_ref::<FoldersUnavailable>()
            .expect("a host failure, not the app's");
        assert!(gone.0.contains(&input.display().to_string()), "{gone}");
        assert!(Preopens::new(None).get().unwrap().is_empty());
    }

    #[test]
    fn growth_is_charged_once_at_the_high_water_mark() {
        let ledger = ledger(10_000, 10);
        let mut l = lock(&ledger);
        assert!(l.grow((1, 1), 0, 1000).is_ok());
        // Rewriting below the mark, or after a truncation, is free.
        assert!(l.grow((1, 1), 0, 500).is_ok());
        assert_eq!(l.used, 1000);
        assert!(l.append((1, 1), 1000).is_ok());
        assert_eq!(l.used, 2000);
        // A sparse write far out is charged as if filled, and refused past the limit.
        assert_eq!(
            l.grow((1, 2), 0, 1 << 40),
            Err(ErrorCode::InsufficientSpace)
        );
        assert_eq!(l.used, 2000);
        assert!(l.grow((1, 2), 0, 8000).is_ok());
        assert_eq!(l.grow((1, 2), 0, 8001), Err(ErrorCode::InsufficientSpace));
    }

    #[test]
    fn entries_are_capped_and_cost_a_block() {
        let ledger = ledger(3 * ENTRY_BYTES, 10);
        let mut l = lock(&ledger);
        for _ in 0..3 {
            assert!(l.create().is_ok());
        }
        assert_eq!(l.create(), Err(ErrorCode::InsufficientSpace));
        let ledger = self::ledger(1 << 30, 2);
        let mut l = lock(&ledger);
        assert!(l.create().is_ok() && l.create().is_ok());
        assert!(!l.has_room_for_entry());
        assert_eq!(l.create(), Err(ErrorCode::Quota));
    }
}
