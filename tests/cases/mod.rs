mod test_admin;
mod test_reserved;
mod test_standard;
mod test_transfer;
