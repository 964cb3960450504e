#!/usr/bin/env python3
"""Adapts crates.io solana-compiler-builtins 0.3.0 to the upstream-LLVM SBF build
(scripts/sbf.sh).

rustc 1.96's BPF Rust ABI passes an i128 result through a hidden pointer, while LLVM 23's
BPF backend calls its i128 libcalls (__multi3, __udivti3, __umodti3, __divti3, __modti3)
expecting the result in registers. Declaring the crate's libcalls `extern "unadjusted"`
(LLVM's own convention, unstable in rustc) makes both sides agree; the signed division and
remainder, which the crate lacks, are added on top of its unsigned `udivmod128`.

    python3 scripts/sbf/patch_builtins.py <solana-compiler-builtins>/src/lib.rs
"""
import sys

path = sys.argv[1]
text = open(path).read()
if 'extern "unadjusted"' in text:
    sys.exit(0)

for name in ("__multi3", "__udivti3", "__umodti3"):
    old = f"pub unsafe fn {name}("
    if old not in text:
        sys.exit(f"patch_builtins: {name} not found in {path} (a different crate version?)")
    text = text.replace(old, f'pub unsafe extern "unadjusted" fn {name}(', 1)

first_attrs = '#![cfg_attr(target_arch = "bpf", no_std)]\n'
if first_attrs not in text:
    sys.exit(f"patch_builtins: the crate attributes of {path} changed")
text = text.replace(
    first_attrs,
    first_attrs + '#![cfg_attr(target_arch = "bpf", feature(abi_unadjusted), allow(internal_features))]\n',
    1,
)

text += '''
#[cfg(target_arch = "bpf")]
#[cfg_attr(feature = "weak-linkage", linkage = "weak_odr")]
#[unsafe(no_mangle)]
pub unsafe extern "unadjusted" fn __divti3(a: i128, b: i128) -> i128 {
    let q = udivmod128(a.unsigned_abs(), b.unsigned_abs()).0 as i128;
    if (a < 0) != (b < 0) { q.wrapping_neg() } else { q }
}

#[cfg(target_arch = "bpf")]
#[cfg_attr(feature = "weak-linkage", linkage = "weak_odr")]
#[unsafe(no_mangle)]
pub unsafe extern "unadjusted" fn __modti3(a: i128, b: i128) -> i128 {
    let r = udivmod128(a.unsigned_abs(), b.unsigned_abs()).1 as i128;
    if a < 0 { r.wrapping_neg() } else { r }
}
'''
open(path, "w").write(text)
print("patch_builtins: i128 libcalls in LLVM's convention", file=sys.stderr)
