pub mod settle;

pub use settle::*;
