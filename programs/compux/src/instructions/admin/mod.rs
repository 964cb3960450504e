pub mod accept_admin;
pub mod apply_market_update;
pub mod fund_recovery_reserve;
pub mod init_market;
pub mod propose_admin;
pub mod update_market;
pub mod withdraw_reserve;
pub mod withdraw_treasury;

pub use accept_admin::*;
pub use apply_market_update::*;
pub use fund_recovery_reserve::*;
pub use init_market::*;
pub use propose_admin::*;
pub use update_market::*;
pub use withdraw_reserve::*;
pub use withdraw_treasury::*;
