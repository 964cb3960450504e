// Replays transcripts of the compux test suite on the program's SBF ELF in LiteSVM, a
// metered SBPF v3 VM with the real SPL Token program (docs/sbf.md).
//
//   node tools/cu-replay/replay.mjs <compux.so> <transcript.jsonl | directory> [--budgets]
//
// A transcript is every transaction one test sent (with whether it succeeded natively, and
// its custom error code), every clock move and every forged account, in order. Each is
// replayed in a fresh VM; every transaction must end as it did natively (success, or the
// same custom error). Labelled transactions (the compute-unit test's worst cases) print
// their compute units beside the limit the transaction asked for (the SDK's, which the VM
// enforces on every transaction); with --budgets each must also stay within its budget.
// Exits 1 on any difference or budget overrun.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { LiteSVM } from "litesvm";
import { address, getCompiledTransactionMessageDecoder, getTransactionDecoder, lamports } from "@solana/kit";

const PROGRAM_ID = address("CmpXqV5BdQ7sXyBoV2Wx1M1aN8tS8n8kQXqK6qTz4tE1");
const SYSTEM = address("11111111111111111111111111111111");
const COMPUTE_BUDGET = address("ComputeBudget111111111111111111111111111111");
/// What each compute-budget instruction (limit, price) itself costs.
const BUDGET_IX_UNITS = 150;
/// The most one instruction may use; the relayer's hot path, which pays for every batch, much less.
const INSTRUCTION_BUDGET = 200_000;
const BUDGETS = [["settle", 40_000], ["settle_facility", 100_000]];

const [elf, target, ...flags] = process.argv.slice(2);
if (!elf || !target) {
  console.error("usage: node tools/cu-replay/replay.mjs <compux.so> <transcript.jsonl | directory> [--budgets]");
  process.exit(2);
}
const files = statSync(target).isDirectory()
  ? readdirSync(target).filter((f) => f.endsWith(".jsonl")).sort().map((f) => join(target, f))
  : [target];
const decodeTx = getTransactionDecoder();
const decodeMessage = getCompiledTransactionMessageDecoder();

function customCode(err) {
  const inner = typeof err?.err === "function" ? err.err() : undefined;
  return typeof inner?.code === "number" ? inner.code : null;
}

/// Replays one transcript; returns [problems, labelled rows].
function replay(file) {
  const svm = new LiteSVM().withSigverify(false).withBlockhashCheck(false).withTransactionHistory(0n);
  svm.addProgramFromFile(PROGRAM_ID, elf);
  const funded = new Set();
  const problems = [];
  const rows = [];
  const steps = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  for (const [i, step] of steps.entries()) {
    if (step.clock !== undefined) {
      const clock = svm.getClock();
      clock.unixTimestamp = BigInt(step.clock);
      svm.setClock(clock);
    } else if (step.account !== undefined) {
      const data = Buffer.from(step.data, "base64");
      svm.setAccount({
        address: address(step.account), lamports: lamports(BigInt(step.lamports)), programAddress: address(step.owner),
        executable: step.executable, data: Uint8Array.from(data), space: BigInt(data.length),
      });
    } else {
      const tx = decodeTx.decode(Buffer.from(step.tx, "base64"));
      // The recording bank's fee payer: give it the same deep pockets here.
      const message = decodeMessage.decode(tx.messageBytes);
      const payer = message.staticAccounts[0];
      // The transaction's own compute-budget instructions; the limit it asked for (the SDK's,
      // which the VM enforces: a transaction that needs more fails here).
      const budgetIxs = message.instructions.filter((ix) => message.staticAccounts[ix.programAddressIndex] === COMPUTE_BUDGET);
      const limitIx = budgetIxs.find((ix) => ix.data?.[0] === 2);
      const limit = limitIx ? Buffer.from(limitIx.data).readUInt32LE(1) : null;
      if (!funded.has(payer)) {
        svm.setAccount({ address: payer, lamports: lamports(10n ** 15n), programAddress: SYSTEM, executable: false, data: new Uint8Array(0), space: 0n });
        funded.add(payer);
      }
      const result = svm.sendTransaction(tx);
      const failed = typeof result.err === "function";
      const code = failed ? customCode(result.err()) : null;
      const what = `step ${i}${step.label ? ` (${step.label})` : ""}`;
      if (failed === step.ok) {
        const logs = failed ? result.meta().logs() : result.logs();
        problems.push(`${what}: ${step.ok ? "succeeded natively, failed in the VM: " + String(result.err()) : "failed natively, succeeded in the VM"}\n    ${logs.join("\n    ")}`);
      } else if (failed && step.custom_error !== null && code !== step.custom_error) {
        problems.push(`${what}: custom error ${code} in the VM, ${step.custom_error} natively`);
      } else if (!failed && step.label) {
        const own = budgetIxs.length * BUDGET_IX_UNITS;
        rows.push([step.label, Number(result.computeUnitsConsumed()) - own, limit === null ? null : limit - own]);
      }
    }
  }
  return [problems, rows];
}

let failures = 0;
const measured = [];
for (const file of files) {
  const [problems, rows] = replay(file);
  measured.push(...rows);
  if (problems.length) {
    failures += 1;
    console.error(`FAIL ${file}\n  ${problems.join("\n  ")}`);
  }
}
console.log(`${files.length - failures}/${files.length} transcripts replayed on ${elf} with every transaction ending as it did natively`);
let over = 0;
if (measured.length) {
  console.log(`compute units (LiteSVM, SBPF v3), the limit the SDK sets, and the budget (${INSTRUCTION_BUDGET} per instruction):`);
  for (const [name, units, limit] of measured) {
    const budget = BUDGETS.find(([prefix]) => name.split(" ")[0] === prefix)?.[1] ?? INSTRUCTION_BUDGET;
    const flag = units > budget ? `  OVER its budget of ${budget}` : "";
    if (flag) over += 1;
    const headroom = limit ? ` (${((100 * units) / limit).toFixed(0)}% of it)` : "";
    console.log(`  ${name.padEnd(48)} ${String(units).padStart(8)}  limit ${String(limit ?? "-").padStart(7)}${headroom}  budget ${budget}${flag}`);
  }
}
process.exit(failures > 0 || (flags.includes("--budgets") && over > 0) ? 1 : 0);
