//! The crate's layers import only downward (docs/relayer.md, "Layers"): each module's
//! `crate::` paths (outside its tests) name its own layer or a lower one, no two modules
//! import each other, directly or through others, every SQL statement is in `store/`, and
//! credit accounts, sources, wallets and key hashes travel as types, not text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module or folder and its layer, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("clock", 0),
    ("error", 0),
    ("domain", 1),
    ("store", 2),
    ("access", 3),
    ("jobs", 4),
    ("config", 5),
    ("providers", 5),
    ("sim", 6),
    ("http", 6),
];

fn rank(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == top).map(|(_, r)| *r)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines (`jobs::alerts`, `clock`) and the modules its code names
/// (`crate::store::ledger::X` names `store::ledger`; `crate::clock::now_ms` names `clock`).
fn imports(root: &Path, file: &Path) -> (String, BTreeSet<String>) {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let module = rel.to_string_lossy().trim_end_matches("/mod").replace('/', "::");
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut named = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let path: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let Some(top) = parts.first() else { continue };
        if rank(top).is_none() {
            continue; // the crate root's re-exports (`crate::Config`) are not used inside
        }
        let is_folder = root.join(top).is_dir();
        let target = match (is_folder, parts.get(1)) {
            (true, Some(m)) if m.chars().all(|c| c.is_ascii_lowercase() || c == '_') => format!("{top}::{m}"),
            _ => top.to_string(),
        };
        if target != module {
            named.insert(target);
        }
    }
    (module, named)
}

#[test]
fn modules_import_only_downward_and_never_in_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("lib.rs")) {
        let (module, named) = imports(&root, file);
        let top = module.split("::").next().unwrap().to_string();
        let own = rank(&top).unwrap_or_else(|| panic!("{module} is in no layer: add it to LAYERS"));
        for n in &named {
            let theirs = rank(n.split("::").next().unwrap()).unwrap();
            if theirs > own {
                upward.push(format!("{module} (layer {own}) imports {n} (layer {theirs})"));
            }
        }
        graph.insert(module, named);
    }
    assert!(upward.is_empty(), "imports against the layers:\n{}", upward.join("\n"));
    assert!(graph.len() > 20, "the scan found the modules: {:?}", graph.keys());

    // No cycle: a depth-first search from every module never comes back to its path.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("an import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            visit(next, g, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn every_sql_statement_lives_in_the_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(root.join("store")))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("sqlx::"))
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(outside.is_empty(), "SQL outside store/: {outside:?}");
}

/// Where an account, a source, a wallet or a key is text on purpose: what a caller sends
/// (a JSON body, a URL) before it is checked, and rows projected straight into JSON.
const TEXT_AT_THE_EDGES: &[(&str, &str)] = &[
    ("http/account.rs", "source: String,"), // `?source=` of GET /v1/settlement/batches
    ("access/keys.rs", "pub owner: String,"), // a signed request's body
    ("http/account.rs", "owner: String, // a wallet, parsed below"), // POST /v1/keys/challenge
    ("store/batches.rs", "source: &str) ->"), // of_source: the caller's `?source=`
    ("store/batches.rs", "pub source: String,"), // a receipt line: row to JSON
    ("store/ledger.rs", "pub key: Option<String>,"), // a usage row grouped by key: row to JSON
    ("store/keys.rs", "let accounts: Vec<String>"), // the column, parsed on the next line
    ("domain/ids.rs", "pub fn of(key: &str)"), // the bearer token itself
];

#[test]
fn accounts_sources_wallets_and_keys_are_types_not_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let names = ["account", "accounts", "source", "facility", "owner", "key_hash", "key"];
    let texts = ["&str", "String", "&String", "Option<&str>", "Option<String>", "Vec<String>"];
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines() {
            let typed_as_text = names.iter().any(|n| {
                texts.iter().any(|t| {
                    line.split([' ', '(', ',']).any(|w| w == format!("{n}:"))
                        && line.contains(&format!("{n}: {t}"))
                })
            });
            let allowed = TEXT_AT_THE_EDGES.iter().any(|(f, snippet)| *f == rel && line.contains(snippet));
            if typed_as_text && !allowed {
                found.push(format!("{rel}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "identifiers as text (use Pubkey, Source or KeyHash; text only at the edges):\n{}",
        found.join("\n")
    );
}
