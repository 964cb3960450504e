#!/usr/bin/env python3
"""Teaches Debian's rust-web-src 1.96 std about target_os = "solana" (upstream std has no
such platform), for scripts/sbf.sh. Each edit adds "solana" to the list of platforms that
already take the generic or unsupported path, so nothing new is implemented:

- allocation: 8-byte minimum alignment on bpf, and a System allocator that returns null
  (Solana programs install their own #[global_allocator]: Anchor's bump heap);
- io errors, thread locals (single-threaded), random keys: the generic / unsupported paths;
- RandomState: fixed keys, since a program may not hold a writable static.

Idempotent: an edit already applied is skipped; an anchor text not found fails loudly,
naming the file, so a new std version shows exactly which edit to revisit.

    python3 scripts/sbf/patch_std.py <rustlib>/src/rust/library
"""
import os
import sys

STD = os.path.join(sys.argv[1], "std", "src")

EDITS = [
    ("sys/alloc/mod.rs", '    target_arch = "x86_64",\n', '    target_arch = "x86_64",\n    target_arch = "bpf",\n'),
    (
        "sys/alloc/mod.rs",
        '    target_os = "zkvm" => {\n        mod zkvm;\n    }\n',
        '    target_os = "zkvm" => {\n        mod zkvm;\n    }\n    target_os = "solana" => {\n        mod solana;\n    }\n',
    ),
    (
        "sys/io/error/mod.rs",
        '        target_os = "zkvm",\n    ) => {\n        mod generic;',
        '        target_os = "zkvm",\n        target_os = "solana",\n    ) => {\n        mod generic;',
    ),
    (
        "sys/thread_local/mod.rs",
        '        target_os = "zkvm",\n        target_os = "trusty",',
        '        target_os = "zkvm",\n        target_os = "solana",\n        target_os = "trusty",',
    ),
    (
        "sys/thread_local/mod.rs",
        '            target_os = "zkvm",\n            target_os = "trusty",',
        '            target_os = "zkvm",\n            target_os = "solana",\n            target_os = "trusty",',
    ),
    (
        "sys/random/mod.rs",
        '        target_os = "xous",\n        target_os = "vexos",\n    ) => {',
        '        target_os = "xous",\n        target_os = "vexos",\n        target_os = "solana",\n    ) => {',
    ),
    (
        "sys/random/mod.rs",
        '    target_os = "xous",\n    target_os = "vexos",\n)))]',
        '    target_os = "xous",\n    target_os = "vexos",\n    target_os = "solana",\n)))]',
    ),
    (
        "hash/random.rs",
        "        thread_local!(static KEYS: Cell<(u64, u64)> = {",
        '        #[cfg(target_os = "solana")]\n        {\n            return RandomState { k0: 0x736f6c616e615f6b, k1: 0x6579735f66697865 };\n        }\n'
        '        #[cfg(not(target_os = "solana"))]\n        thread_local!(static KEYS: Cell<(u64, u64)> = {',
    ),
    (
        "hash/random.rs",
        "        KEYS.with(|keys| {\n            let (k0, k1) = keys.get();",
        '        #[cfg(not(target_os = "solana"))]\n        KEYS.with(|keys| {\n            let (k0, k1) = keys.get();',
    ),
]

ALLOCATOR = """use crate::alloc::{GlobalAlloc, Layout, System};

// Solana programs bring their own #[global_allocator]; the System allocator never serves.
#[stable(feature = "alloc_system_type", since = "1.28.0")]
unsafe impl GlobalAlloc for System {
    #[inline]
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        crate::ptr::null_mut()
    }
    #[inline]
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
"""


def main():
    for rel, old, new in EDITS:
        path = os.path.join(STD, rel)
        text = open(path).read()
        if new in text:
            continue
        if old not in text:
            sys.exit(f"patch_std: {rel}: the text to patch is not there (a different std version?): {old[:60]!r}")
        open(path, "w").write(text.replace(old, new, 1))
    open(os.path.join(STD, "sys", "alloc", "solana.rs"), "w").write(ALLOCATOR)
    print("patch_std: std knows target_os = \"solana\"", file=sys.stderr)


main()
