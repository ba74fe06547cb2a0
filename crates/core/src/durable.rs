//! Writes that survive a power cut: sled flushed and fsynced, and whole files written atomically.
//!
//! sled's own `flush` writes its buffers to the files but does not promise an
//! fsync on every platform; a payment product needs that promise before it
//! tells anyone a payment is on its way. Files (models, hashes, keys, the
//! trusted gateway key) are written beside their place, fsynced and renamed
//! or linked in, so a reader sees the old file or the whole new one.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Flushes `db` (opened at `dir`), then fsyncs its files, its `blobs/` (large
/// values sled writes as files without syncing them) and the directories.
pub fn flush_and_sync(db: &sled::Db, dir: &Path) -> io::Result<()> {
    db.flush().map_err(io::Error::other)?;
    sync_dir_files(dir)?;
    let blobs = dir.join("blobs");
    if blobs.is_dir() {
        sync_dir_files(&blobs)?;
    }
    Ok(())
}

/// fsyncs each regular file directly in `dir`, then `dir` itself (so new and
/// renamed files, e.g. sled's `snap.*`, are durable too).
fn sync_dir_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        // Unix can fsync a read-only handle.
        match fs::File::open(entry.path()) {
            Ok(file) => file.sync_all()?,
            // sled removes old snapshots concurrently; a file gone is fine.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::File::open(dir)?.sync_all()
}

/// Creates `dir` (and its parents) readable by its owner only (0700): keys,
/// payments and the ledger are nobody else's business.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Makes every file directly in `dir` owner-only (0600).
fn private_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// How long opening a database waits for its file lock by default.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the sled database in `dir`, private to its owner (0700, files
/// 0600), waiting up to `lock_wait` ([`LOCK_WAIT`] as a rule) for its file lock: sled releases the
/// lock when the last handle drops, and a handle held by a task or thread
/// that is just ending (a daemon stopping, a link being aborted, sled's own
/// background work) may take a moment to go; on a loaded two-core machine
/// two seconds were once not enough (a gateway reopened in a unit test).
pub fn open_db(
    config: &sled::Config,
    dir: &Path,
    lock_wait: std::time::Duration,
) -> sled::Result<sled::Db> {
    private_dir(dir)?;
    let mut waited = std::time::Duration::ZERO;
    let step = std::time::Duration::from_millis(20);
    loop {
        let opened = config.open();
        if opened.is_ok() {
            private_files(dir)?;
        }
        match opened {
            Err(sled::Error::Io(e)) if lock_held_elsewhere(&e) && waited < lock_wait => {
                std::thread::sleep(step);
                waited += step;
            }
            other => return other,
        }
    }
}

/// Whether opening a database failed because another handle (in this
/// process or another) holds its file lock: with a zero `lock_wait`, the
/// caller learns the store is busy instead of waiting.
pub fn is_lock_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if lock_held_elsewhere(e))
}

/// Whether sled could not open because another handle holds its file lock.
/// sled 0.34 reports that as `ErrorKind::Other` with the lock's own error
/// only in the message ("could not acquire lock on ..."), so the message is
/// what tells it apart; a daemon starting while `voicepay status` read the
/// store failed at once on it.
fn lock_held_elsewhere(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
        || error.to_string().starts_with("could not acquire lock")
}

/// What an atomic write does to a file already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    /// Fail with `AlreadyExists` (a key file must never be overwritten).
    Keep,
}

/// The step of an atomic write that failed, with its path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct WriteError {
    /// "create", "write", "sync", "rename to".
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl WriteError {
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// Writes `path` through `write`, atomically: into a temporary file beside it
/// created with `mode` from its first byte, fsynced, then renamed over it
/// (`Existing::Replace`) or linked in only if nothing is there
/// (`Existing::Keep`); the directory is fsynced last. `write` gets the
/// temporary file and its path (for its own error messages). On any failure
/// the temporary file is removed and `path` is untouched.
pub fn write_atomically<T, E: From<WriteError>>(
    path: &Path,
    mode: u32,
    existing: Existing,
    write: impl FnOnce(&mut BufWriter<File>, &Path) -> Result<T, E>,
) -> Result<T, E> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let failed = |step: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { step, path, source }
    };
    let Some(file_name) = path.file_name() else {
        let invalid = io::Error::new(io::ErrorKind::InvalidInput, "no file name");
        return Err(failed("create", path)(invalid).into());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(failed("create", &tmp))?;
    let result = (|| {
        // The umask may have narrowed `mode`; a hash file is for everyone.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(failed("create", &tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut w, &tmp)?;
        let file = w
            .into_inner()
            .map_err(|e| failed("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(failed("sync", &tmp))?;
        drop(file);
        match existing {
            Existing::Replace => fs::rename(&tmp, path).map_err(failed("rename to", path))?,
            // A hard link fails when the name exists: no check-then-write race.
            Existing::Keep => {
                fs::hard_link(&tmp, path).map_err(failed("create", path))?;
                let _ = fs::remove_file(&tmp);
            }
        }
        Ok(value)
    })();
    match result {
        Ok(value) => {
            // Persist the rename itself; best effort, as some filesystems refuse
            // to fsync a directory and the data is already safe.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(value)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// [`write_atomically`] of a byte string.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> Result<(), WriteError> {
    write_atomically(path, mode, existing, |w, tmp| {
        io::Write::write_all(w, bytes).map_err(|source| WriteError {
            step: "write",
            path: tmp.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: in the full suite a daemon starting while `voicepay
    /// status` held the store for a moment failed at once with "could not
    /// acquire lock" (sled reports it as `Other`, so the wait never began).
    #[test]
    fn a_store_held_for_a_moment_by_another_handle_is_waited_for_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let config = sled::Config::new().path(&path);
        let held = open_db(&config, &path, LOCK_WAIT).unwrap();
        let (opening_tx, opening_rx) = std::sync::mpsc::channel();
        let second = {
            let (config, path) = (config.clone(), path.clone());
            std::thread::spawn(move || {
                let _ = opening_tx.send(());
                open_db(&config, &path, LOCK_WAIT).map(|_| ())
            })
        };
        // The second open has begun; the first handle goes while it waits.
        opening_rx.recv().unwrap();
        drop(held);
        second
            .join()
            .unwrap()
            .expect("opened once the first handle went");
    }

    #[test]
    fn a_file_is_written_whole_with_its_mode_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.pub");
        write_file(&path, b"one\n", 0o644, Existing::Replace).unwrap();
        write_file(&path, b"two\n", 0o644, Existing::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the file itself");
    }

    #[test]
    fn keep_never_overwrites_and_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        write_file(&path, b"secret", 0o600, Existing::Keep).unwrap();
        let err = write_file(&path, b"other", 0o600, Existing::Keep).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let result: Result<(), WriteError> =
            write_atomically(&path, 0o644, Existing::Replace, |_, tmp| {
                Err(WriteError {
                    step: "write",
                    path: tmp.to_owned(),
                    source: io::Error::other("disk full"),
                })
            });
        assert!(result.unwrap_err().to_string().starts_with("cannot write"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
