//! Making sled's writes survive a power cut: flush, then fsync the files and the directory sled wrote.
//!
//! sled's own `flush` writes its buffers to the files but does not promise an
//! fsync on every platform; a payment product needs that promise before it
//! tells anyone a payment is on its way.

use std::fs::File;
use std::io;
use std::path::Path;

/// Flushes `db` (opened at `dir`) and fsyncs every regular file at the top of
/// `dir`, then `dir` itself.
pub fn flush_and_sync(db: &sled::Db, dir: &Path) -> io::Result<()> {
    db.flush().map_err(io::Error::other)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            File::open(&path)?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}
