//! `compux-idl` writes `idl/compux.json`; `compux-idl --check` fails when it is stale.
//!
//! Same output as `anchor idl build`, without the Anchor CLI: anchor-lang-idl compiles the
//! program with `idl-build` and merges the printed sections. It sets its own RUSTFLAGS, so it
//! builds in a target dir of its own and never invalidates the main one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anchor_lang_idl::build::IdlBuilder;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some("-h" | "--help") => {
            println!("usage: compux-idl [--check]\n  writes idl/compux.json from programs/compux; --check exits 1 if it is stale");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => anyhow::bail!("unknown argument {other:?} (try --help)"),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let out = root.join("idl/compux.json");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));

    // anchor-lang-idl turns RUSTUP_TOOLCHAIN into a literal `+{toolchain}` argument; the
    // toolchain is the one running us anyway.
    std::env::remove_var("RUSTUP_TOOLCHAIN");
    eprintln!("building the IDL of programs/compux (first run compiles the program with idl-build)...");
    let idl = IdlBuilder::new()
        .program_path(root.join("programs/compux"))
        .cargo_args(vec!["--target-dir".into(), target.join("idl-build").display().to_string()])
        .build()?;
    let json = serde_json::to_string_pretty(&idl)? + "\n";

    if check {
        let current = std::fs::read_to_string(&out).unwrap_or_default();
        if current != json {
            eprintln!("idl/compux.json is stale: run `cargo run -p compux-idl` and commit it");
            return Ok(ExitCode::from(1));
        }
        eprintln!("idl/compux.json is fresh ({} instructions)", idl.instructions.len());
    } else {
        std::fs::write(&out, json)?;
        eprintln!("wrote {} ({} instructions)", out.display(), idl.instructions.len());
    }
    Ok(ExitCode::SUCCESS)
}
