//! Making sled's writes survive a power cut: flush, then fsync the files and directories sled wrote.
//!
//! sled's own `flush` writes its buffers to the files but does not promise an
//! fsync on every platform; a payment product needs that promise before it
//! tells anyone a payment is on its way.

use std::fs;
use std::io;
use std::path::Path;

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
