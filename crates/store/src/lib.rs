//! `store`: the only crate that writes SQL. SQLite (default) and PostgreSQL behind one typed API.
