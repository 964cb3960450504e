//! Wallets are Solana CLI keypair files: a JSON array of the 64 secret-key bytes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use solana_sdk::signature::Keypair;

pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".config/solana/id.json")
}

/// Loads the wallet, or says exactly what is wrong with the file and how to get a good one.
pub fn load(path: Option<&Path>) -> Result<Keypair> {
    let path = path.map(Path::to_path_buf).unwrap_or_else(default_path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no keypair file at {}: create one with `compux keygen` or pass --keypair PATH",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read keypair file {}", path.display())),
    };
    let bytes: Vec<u8> = serde_json::from_str(&text).with_context(|| {
        format!("{} is not a Solana keypair file (a JSON array of 64 numbers from 0 to 255)", path.display())
    })?;
    if bytes.len() != 64 {
        bail!("{} holds {} bytes; a Solana keypair file holds 64", path.display(), bytes.len());
    }
    Keypair::try_from(&bytes[..])
        .with_context(|| format!("{} holds an invalid ed25519 keypair", path.display()))
}

/// Writes a new keypair, refusing to replace an existing wallet unless `force`.
pub fn create(path: &Path, force: bool) -> Result<Keypair> {
    if path.exists() && !force {
        bail!("{} already exists; pass --force to replace it (its funds would be lost)", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let kp = Keypair::new();
    let json = serde_json::to_string(&kp.to_bytes().to_vec())?;
    write_private(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(kp)
}

/// Writes a secret (a keypair, an API key) readable by its owner only.
#[cfg(unix)]
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
