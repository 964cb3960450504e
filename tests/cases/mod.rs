mod test_admin;
mod test_artifacts;
mod test_auto_refill;
mod test_facility_lives;
mod test_reserved;
mod test_settle;
mod test_standard;
mod test_transfer;
