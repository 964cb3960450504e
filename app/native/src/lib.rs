//! The `compux` program in a bank with the real SPL programs: as the SBF ELF that
//! `scripts/sbf.sh` builds, run in LiteSVM's metered virtual machine (`svm`), or natively in
//! solana-program-test (for debugging). Shared by the integration tests and the localnet
//! through [`Bank`], so both see the same runtime, including the program's events in the
//! transaction logs.

// solana-program-test 3.1 marks its API as the "Agave Unstable API"; this crate is the one
// place that touches it.
#![allow(deprecated)]

mod bank;
pub mod svm;

pub use bank::{Bank, BankError};
pub use svm::Executed;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anchor_lang::solana_program::entrypoint::ProgramResult;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::solana_program::pubkey::Pubkey;
use anchor_lang::{compat::solana_sysvar::program_stubs, prelude::AccountInfo};
use solana_program_test::{
    get_runtime_environment_key, invoke_builtin_function, EbpfError, EbpfVm, InvokeContext, ProgramTest,
    ProgramTestContext,
};

fn process(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> ProgramResult {
    // Anchor's entry wants one lifetime for all three; the bank keeps them alive for the call.
    let accounts: &[AccountInfo] = unsafe { std::mem::transmute(accounts) };
    compux::entry(program_id, accounts, data)
}

thread_local! {
    /// The invoke context of the native instruction running on this thread, if any.
    static CURRENT: Cell<*mut InvokeContext<'static, 'static>> = const { Cell::new(std::ptr::null_mut()) };
}

/// What `solana_program_test::processor!` expands to, plus remembering the invoke context so
/// `sol_log_data` can reach the transaction's log collector.
fn builtin(vm: *mut EbpfVm<InvokeContext>, _: u64, _: u64, _: u64, _: u64, _: u64) {
    // SAFETY: the runtime passes a pointer `get_runtime_environment_key()` bytes into the VM,
    // exactly as the `processor!` macro assumes.
    let vm = unsafe {
        &mut *((vm as *mut u64).offset(-(get_runtime_environment_key() as isize))
            as *mut EbpfVm<InvokeContext>)
    };
    let ic = std::ptr::from_mut(vm.context_object_pointer).cast::<InvokeContext<'static, 'static>>();
    let previous = CURRENT.with(|c| c.replace(ic));
    vm.program_result =
        invoke_builtin_function(process, vm.context_object_pointer).map_err(EbpfError::SyscallError).into();
    CURRENT.with(|c| c.set(previous));
}

/// How the bank runs the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// Compiled into this binary, in solana-program-test: fast, debuggable, unmetered.
    Native,
    /// An SBF ELF in LiteSVM's metered VM (`compux-svm`, next to the ELF).
    Elf(PathBuf),
}

/// Set to an ELF's path, it makes every test bank run that ELF.
pub const PROGRAM_SO_ENV: &str = "COMPUX_PROGRAM_SO";

impl Runtime {
    /// The ELF `COMPUX_PROGRAM_SO` names, or native when it is unset or empty.
    pub fn from_env() -> Runtime {
        match std::env::var_os(PROGRAM_SO_ENV) {
            Some(p) if !p.is_empty() => Runtime::Elf(PathBuf::from(p)),
            _ => Runtime::Native,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Runtime::Native => "native (unmetered)".into(),
            Runtime::Elf(p) => format!("SBF ELF {} (metered VM)", p.display()),
        }
    }
}

/// A `ProgramTest` running `compux` natively. Start it with [`start`].
fn program_test_native() -> ProgramTest {
    let mut pt = ProgramTest::new("compux", compux::ID, Some(builtin));
    pt.prefer_bpf(false);
    pt
}

fn read_elf(path: &Path) -> Result<Vec<u8>, String> {
    let elf = std::fs::read(path).map_err(|e| {
        format!("cannot read the program ELF {}: {e} (build it with `bash scripts/sbf.sh`)", path.display())
    })?;
    if !elf.starts_with(b"\x7fELF") {
        return Err(format!("{} is not an ELF file (build it with `bash scripts/sbf.sh`)", path.display()));
    }
    Ok(elf)
}

/// Starts the bank and installs the log bridge (after program-test installs its own stubs).
async fn start(pt: ProgramTest) -> ProgramTestContext {
    let ctx = pt.start_with_context().await;
    static BRIDGE: Once = Once::new();
    BRIDGE.call_once(|| {
        let inner = program_stubs::set_syscall_stubs(Box::new(LogBridge { inner: None }));
        program_stubs::set_syscall_stubs(Box::new(LogBridge { inner: Some(inner) }));
    });
    ctx
}

/// program-test's syscall stubs, except that `sol_log_data` (events) is written to the
/// transaction's logs as `Program data: <base64>...`, as the SBF runtime does.
struct LogBridge {
    inner: Option<Box<dyn program_stubs::SyscallStubs>>,
}

impl LogBridge {
    fn inner(&self) -> &dyn program_stubs::SyscallStubs {
        self.inner.as_deref().expect("log bridge installed without inner stubs")
    }
}

impl program_stubs::SyscallStubs for LogBridge {
    fn sol_log_data(&self, fields: &[&[u8]]) {
        let ic = CURRENT.with(|c| c.get());
        if ic.is_null() {
            return self.inner().sol_log_data(fields);
        }
        // SAFETY: set by `builtin` for the duration of this instruction on this thread.
        let ic = unsafe { &*ic };
        solana_program_runtime::stable_log::program_data(&ic.get_log_collector(), fields);
    }
    fn sol_log(&self, message: &str) {
        self.inner().sol_log(message)
    }
    fn sol_log_compute_units(&self) {
        self.inner().sol_log_compute_units()
    }
    fn sol_remaining_compute_units(&self) -> u64 {
        self.inner().sol_remaining_compute_units()
    }
    fn sol_invoke_signed(
        &self,
        ix: &Instruction,
        infos: &[AccountInfo],
        seeds: &[&[&[u8]]],
    ) -> ProgramResult {
        self.inner().sol_invoke_signed(ix, infos, seeds)
    }
    fn sol_get_sysvar(&self, id: *const u8, var: *mut u8, offset: u64, length: u64) -> u64 {
        self.inner().sol_get_sysvar(id, var, offset, length)
    }
    fn sol_get_clock_sysvar(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_clock_sysvar(var)
    }
    fn sol_get_epoch_schedule_sysvar(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_epoch_schedule_sysvar(var)
    }
    fn sol_get_fees_sysvar(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_fees_sysvar(var)
    }
    fn sol_get_rent_sysvar(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_rent_sysvar(var)
    }
    fn sol_get_epoch_rewards_sysvar(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_epoch_rewards_sysvar(var)
    }
    fn sol_get_last_restart_slot(&self, var: *mut u8) -> u64 {
        self.inner().sol_get_last_restart_slot(var)
    }
    fn sol_get_epoch_stake(&self, vote: *const u8) -> u64 {
        self.inner().sol_get_epoch_stake(vote)
    }
    unsafe fn sol_memcpy(&self, dst: *mut u8, src: *const u8, n: usize) {
        unsafe { self.inner().sol_memcpy(dst, src, n) }
    }
    unsafe fn sol_memmove(&self, dst: *mut u8, src: *const u8, n: usize) {
        unsafe { self.inner().sol_memmove(dst, src, n) }
    }
    unsafe fn sol_memcmp(&self, s1: *const u8, s2: *const u8, n: usize, result: *mut i32) {
        unsafe { self.inner().sol_memcmp(s1, s2, n, result) }
    }
    unsafe fn sol_memset(&self, s: *mut u8, c: u8, n: usize) {
        unsafe { self.inner().sol_memset(s, c, n) }
    }
    fn sol_get_return_data(&self) -> Option<(Pubkey, Vec<u8>)> {
        self.inner().sol_get_return_data()
    }
    fn sol_set_return_data(&self, data: &[u8]) {
        self.inner().sol_set_return_data(data)
    }
    fn sol_get_processed_sibling_instruction(&self, index: usize) -> Option<Instruction> {
        self.inner().sol_get_processed_sibling_instruction(index)
    }
    fn sol_get_stack_height(&self) -> u64 {
        self.inner().sol_get_stack_height()
    }
}

/// Logs as the SBF runtime writes them. Natively, solana-program-test logs each native
/// instruction's `invoke` and `success`/`failed` lines itself as well as the runtime does, and
/// logs a CPI's `invoke` once more at the caller's depth. Clients that track the invoke
/// stack from the logs (Anchor's event parser) need one line per frame, so the copies are
/// dropped: an `invoke` line followed by an `invoke` of the same program, and a result line
/// repeated right after itself (a program does not re-enter itself here).
pub fn normalize_logs(logs: Vec<String>) -> Vec<String> {
    let frame = |l: &str| -> Option<(String, &'static str)> {
        let rest = l.strip_prefix("Program ")?;
        let (program, tail) = rest.split_once(' ')?;
        let kind = if tail.starts_with("invoke [") {
            "invoke"
        } else if tail == "success" || tail.starts_with("failed: ") {
            "result"
        } else {
            return None;
        };
        Some((program.to_string(), kind))
    };
    let mut out: Vec<String> = Vec::with_capacity(logs.len());
    for (i, line) in logs.iter().enumerate() {
        match frame(line) {
            Some((program, "invoke")) => {
                let next = logs.get(i + 1).and_then(|n| frame(n));
                if next == Some((program, "invoke")) {
                    continue;
                }
            }
            Some((_, "result")) if out.last() == Some(line) => continue,
            _ => {}
        }
        out.push(line.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_logs;

    #[test]
    fn native_log_copies_are_dropped_and_real_lines_kept() {
        let raw = [
            "Program C invoke [1]",
            "Program C invoke [1]",
            "Program T invoke [1]",
            "Program T invoke [2]",
            "Program log: Instruction: MintTo",
            "Program T success",
            "Program T success",
            "Program data: AAAA",
            "Program T invoke [1]",
            "Program T invoke [2]",
            "Program T failed: custom program error: 0x1",
            "Program T failed: custom program error: 0x1",
            "Program C failed: custom program error: 0x1",
            "Program C failed: custom program error: 0x1",
        ];
        let want = [
            "Program C invoke [1]",
            "Program T invoke [2]",
            "Program log: Instruction: MintTo",
            "Program T success",
            "Program data: AAAA",
            "Program T invoke [2]",
            "Program T failed: custom program error: 0x1",
            "Program C failed: custom program error: 0x1",
        ];
        assert_eq!(normalize_logs(raw.iter().map(|s| s.to_string()).collect()), want);
        // Two different CPIs in a row keep both frames.
        let two = [
            "Program A invoke [1]",
            "Program T invoke [2]",
            "Program T success",
            "Program T invoke [2]",
            "Program T success",
            "Program A success",
        ];
        let two: Vec<String> = two.iter().map(|s| s.to_string()).collect();
        assert_eq!(normalize_logs(two.clone()), two);
    }
}
