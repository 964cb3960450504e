// The localnet through the JavaScript clients users have: @solana/web3.js 1.x and Anchor's
// TypeScript client with idl/compux.json. Reads the market, sends open_credit_account with
// sendAndConfirmTransaction (confirmed over PubSub signatureSubscribe) and receives its event
// through an Anchor event listener (logsSubscribe).
//
//   node localnet_check.mjs <rpc-url> <market-address>
import { readFileSync } from "node:fs";
import anchor from "@anchor-lang/core";
import {
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  PublicKey,
  SystemProgram,
  sendAndConfirmTransaction,
} from "@solana/web3.js";

const [url, marketAddress] = process.argv.slice(2);
if (!url || !marketAddress) {
  console.error("usage: node localnet_check.mjs <rpc-url> <market-address>");
  process.exit(2);
}
// Never hang a test run: a missing notification fails the check instead.
setTimeout(() => {
  console.log("FAIL the check did not finish within 60 s");
  console.log("node: 0 passed, 1 failed");
  process.exit(1);
}, 60_000).unref();
const TOKEN_PROGRAM = new PublicKey("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const idl = JSON.parse(readFileSync(new URL("../../idl/compux.json", import.meta.url)));
const connection = new Connection(url, "confirmed");
const owner = Keypair.generate();
const provider = new anchor.AnchorProvider(connection, new anchor.Wallet(owner), { commitment: "confirmed" });
const program = new anchor.Program(idl, provider);

let passed = 0;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
}

const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms));

try {
  const market = new PublicKey(marketAddress);
  const state = await program.account.market.fetch(market);
  check("Anchor decodes the market account", state.creator instanceof PublicKey && state.basePrice.toNumber() > 0,
    `base price ${state.basePrice.toString()}`);

  const airdrop = await connection.requestAirdrop(owner.publicKey, LAMPORTS_PER_SOL);
  const latest = await connection.getLatestBlockhash();
  await connection.confirmTransaction({ signature: airdrop, ...latest }, "confirmed");
  check("airdrop confirmed", (await connection.getBalance(owner.publicKey)) === LAMPORTS_PER_SOL);

  const [creditMint] = PublicKey.findProgramAddressSync([Buffer.from("credit_mint"), market.toBuffer()], program.programId);
  const [creditAccount] = PublicKey.findProgramAddressSync(
    [Buffer.from("credit_account"), market.toBuffer(), owner.publicKey.toBuffer()], program.programId);
  const [vault] = PublicKey.findProgramAddressSync([Buffer.from("credit_vault"), creditAccount.toBuffer()], program.programId);

  let listener;
  const event = new Promise((resolve) => {
    listener = program.addEventListener("creditAccountOpened", (e, slot, signature) => resolve({ e, slot, signature }));
  });
  const tx = await program.methods
    .openCreditAccount()
    .accountsPartial({
      owner: owner.publicKey,
      market,
      creditAccount,
      creditMint,
      vault,
      tokenProgram: TOKEN_PROGRAM,
      systemProgram: SystemProgram.programId,
    })
    .transaction();
  const signature = await sendAndConfirmTransaction(connection, tx, [owner], { commitment: "confirmed" });
  check("sendAndConfirmTransaction confirmed over PubSub", typeof signature === "string", signature);

  const got = await Promise.race([event, timeout(10_000, "the CreditAccountOpened event")]);
  check("the Anchor event listener received CreditAccountOpened",
    got.signature === signature && got.e.owner.equals(owner.publicKey) && got.e.vault.equals(vault));
  await program.removeEventListener(listener);

  const opened = await program.account.creditAccount.fetch(creditAccount);
  check("the new credit account reads back", opened.owner.equals(owner.publicKey) && opened.market.equals(market));
  const found = await program.account.creditAccount.all([{ memcmp: { offset: 8 + 32, bytes: owner.publicKey.toBase58() } }]);
  check("getProgramAccounts with a memcmp filter finds it", found.length === 1 && found[0].publicKey.equals(creditAccount));
} catch (e) {
  failed++;
  console.log(`FAIL ${e.stack ?? e}`);
}
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
