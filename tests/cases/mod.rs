mod test_admin;
