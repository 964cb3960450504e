//! The ledger's journal: each usage record is appended, as one JSON line, to a segment file
//! before its response goes out. A `write` that returned is in the operating system's page
//! cache, so the record survives a kill -9 of the relayer; the SQLite ledger ingests
//! records from memory right after and deletes a segment once all of it is committed. At
//! start, segments still present are replayed into SQLite (idempotently: request ids are
//! unique). This keeps the database, and the threads it runs on, off the request path: an
//! append is one system call.
//!
//! Files: `<ledger>.journal.<seq>`, seq increasing. A last line cut short (the process died
//! inside the write, before it returned and before any response) is ignored at replay.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::domain::usage::UsageRecord;

/// A segment is closed (and later deleted) once it holds this many bytes, by default.
pub const SEGMENT_BYTES: u64 = 16 << 20;

pub struct Journal {
    base: PathBuf,
    file: File,
    seq: u64,
    bytes: u64,
    segment_bytes: u64,
}

/// What an append did besides writing: the segment it closed, to delete once ingested.
pub struct Appended {
    pub closed: Option<PathBuf>,
}

impl Journal {
    /// The segments next to `ledger`, oldest first, with their sequence numbers.
    pub fn segments(ledger: &Path) -> Result<Vec<(u64, PathBuf)>> {
        let dir = ledger.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let prefix = format!("{}.journal.", ledger.file_name().and_then(|n| n.to_str()).unwrap_or("ledger"));
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            let seq =
                path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(&prefix)?.parse().ok());
            if let Some(seq) = seq {
                found.push((seq, path));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The records of a segment; a torn or unreadable line ends it (it was never answered).
    pub fn read(path: &Path) -> Result<Vec<UsageRecord>> {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text
            .split(|&b| b == b'\n')
            .map_while(|line| serde_json::from_slice::<UsageRecord>(line).ok())
            .collect())
    }

    /// Opens a new segment after `last_seq`; segments close at `segment_bytes`.
    pub fn create(ledger: &Path, last_seq: u64, segment_bytes: u64) -> Result<Journal> {
        let seq = last_seq + 1;
        let file = Self::open_segment(ledger, seq)?;
        Ok(Journal { base: ledger.to_path_buf(), file, seq, bytes: 0, segment_bytes })
    }

    fn path(ledger: &Path, seq: u64) -> PathBuf {
        let mut name = ledger.as_os_str().to_owned();
        name.push(format!(".journal.{seq:06}"));
        PathBuf::from(name)
    }

    fn open_segment(ledger: &Path, seq: u64) -> Result<File> {
        let path = Self::path(ledger, seq);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the ledger journal {}", path.display()))
    }

    /// Appends one record with a single write; when it returns, the record survives the
    /// process being killed.
    pub fn append(&mut self, record: &UsageRecord) -> Result<Appended> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.write_all(&line).context("cannot append to the ledger journal")?;
        self.bytes += line.len() as u64;
        if self.bytes < self.segment_bytes {
            return Ok(Appended { closed: None });
        }
        let closed = Self::path(&self.base, self.seq);
        self.file = Self::open_segment(&self.base, self.seq + 1)?;
        self.seq += 1;
        self.bytes = 0;
        Ok(Appended { closed: Some(closed) })
    }

    /// A handle on the current segment, for syncing it to disk off the request path.
    pub fn sync_handle(&self) -> Result<File> {
        Ok(self.file.try_clone()?)
    }
}
