//! Creating the program's per-user PDAs so that lamports sent to an address in advance
//! cannot block it.
//!
//! Anchor 1.2's `init` creates an address that already holds lamports with the system
//! program's `CreateAccountAllowPrefund` (SIMD-0312), which clusters without that feature
//! reject: anyone could block a credit account, a reservation or the market's next facility
//! by sending it one lamport. Here a prefunded address that is still a bare system account
//! is topped up to rent exemption, allocated and assigned (three instructions every cluster
//! has), signed with the PDA's seeds; any other existing account is refused.

use anchor_lang::prelude::*;
use anchor_lang::solana_program::program_pack::Pack;
use anchor_lang::system_program::{self, Allocate, Assign, CreateAccount, Transfer};
use anchor_spl::token::{self, spl_token, InitializeAccount3};

/// Creates `target` (the PDA of `seeds`, bump included) with `space` bytes owned by `owner`,
/// rent paid by `payer`.
pub fn create_pda<'info>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    seeds: &[&[u8]],
    space: usize,
    owner: &Pubkey,
) -> Result<()> {
    let rent = Rent::get()?.minimum_balance(space);
    let held = target.lamports();
    let signer = &[seeds];
    if held == 0 {
        let accounts = CreateAccount { from: payer.clone(), to: target.clone() };
        let ctx = CpiContext::new_with_signer(system_program::ID, accounts, signer);
        return system_program::create_account(ctx, rent, space as u64, owner);
    }
    require!(
        target.owner == &system_program::ID && target.data_is_empty(),
        crate::errors::CompuxError::AddressInUse
    );
    if rent > held {
        let accounts = Transfer { from: payer.clone(), to: target.clone() };
        system_program::transfer(CpiContext::new(system_program::ID, accounts), rent - held)?;
    }
    let ctx = CpiContext::new_with_signer(
        system_program::ID,
        Allocate { account_to_allocate: target.clone() },
        signer,
    );
    system_program::allocate(ctx, space as u64)?;
    let ctx =
        CpiContext::new_with_signer(system_program::ID, Assign { account_to_assign: target.clone() }, signer);
    system_program::assign(ctx, owner)
}

/// Creates a program account at the PDA of `seeds` and writes `value` (discriminator first).
pub fn init_account<'info, T: AccountSerialize + Space>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    seeds: &[&[u8]],
    value: &T,
) -> Result<()> {
    create_pda(payer, target, seeds, 8 + T::INIT_SPACE, &crate::ID)?;
    let mut data = target.try_borrow_mut_data()?;
    value.try_serialize(&mut &mut data[..])
}

/// Creates an SPL token account of `mint` at the PDA of `seeds`, owned by `authority`.
pub fn init_token_account<'info>(
    payer: &AccountInfo<'info>,
    target: &AccountInfo<'info>,
    seeds: &[&[u8]],
    mint: &AccountInfo<'info>,
    authority: &AccountInfo<'info>,
) -> Result<()> {
    create_pda(payer, target, seeds, spl_token::state::Account::LEN, &token::ID)?;
    let accounts =
        InitializeAccount3 { account: target.clone(), mint: mint.clone(), authority: authority.clone() };
    token::initialize_account3(CpiContext::new(token::ID, accounts))
}
