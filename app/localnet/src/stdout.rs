//! Where a process's own output goes. Normally stdout. When this process runs the chain itself
//! (`localnet`, `up`), the natively running program prints its `msg!` lines to stdout, as
//! solana-program-test does; those are diverted (to a log file in the data directory, as
//! solana-test-validator keeps its log, or to stderr) so stdout stays the command's own
//! (one JSON document with --json).

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, OnceLock};

static OUT: OnceLock<Mutex<File>> = OnceLock::new();

/// Sends file descriptor 1 to `file` (appended; stderr when `None`) and keeps the real
/// stdout for [`line`].
pub fn divert_program_logs(file: Option<&std::path::Path>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let target = match file {
        Some(path) => Some(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        None => None,
    };
    let fd = target.as_ref().map_or(2, |f| f.as_raw_fd());
    // SAFETY: plain descriptor duplication at start-up, before the chain runs; the
    // duplicate is owned by the File kept in OUT for the life of the process, and fd 1
    // keeps its own reference to the log file after `target` is dropped.
    unsafe {
        let saved = libc::dup(1);
        if saved < 0 || libc::dup2(fd, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _ = OUT.set(Mutex::new(File::from_raw_fd(saved)));
    }
    Ok(())
}

/// Prints one line of the command's own output.
pub fn line(text: &str) {
    match OUT.get() {
        Some(out) => {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        None => println!("{text}"),
    }
}
