//! SPL Token plumbing for wallets: associated token accounts and test-mint issuance.

use anchor_spl::associated_token::{get_associated_token_address, spl_associated_token_account};
use anchor_spl::token::spl_token;
use anyhow::Result;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::send::{send, Sender};

/// The owner's associated token account for `mint`, created (paid by `payer`) if missing.
pub async fn ensure_ata(
    rpc: &RpcClient,
    how: Sender,
    payer: &Keypair,
    owner: &Pubkey,
    mint: &Pubkey,
) -> Result<Pubkey> {
    let ata = get_associated_token_address(owner, mint);
    if rpc.get_account_with_commitment(&ata, rpc.commitment()).await?.value.is_none() {
        let ix = spl_associated_token_account::instruction::create_associated_token_account_idempotent(
            &payer.pubkey(),
            owner,
            mint,
            &spl_token::ID,
        );
        send(rpc, how, "create token account", payer, &[ix], &[]).await?;
    }
    Ok(ata)
}

/// Mints `amount` of a test mint whose authority is `authority` to `owner`'s associated account.
pub async fn mint_to_owner(
    rpc: &RpcClient,
    how: Sender,
    authority: &Keypair,
    mint: &Pubkey,
    owner: &Pubkey,
    amount: u64,
) -> Result<Pubkey> {
    let ata = ensure_ata(rpc, how, authority, owner, mint).await?;
    let ix = spl_token::instruction::mint_to(&spl_token::ID, mint, &ata, &authority.pubkey(), &[], amount)?;
    send(rpc, how, "mint test quote", authority, &[ix], &[]).await?;
    Ok(ata)
}
