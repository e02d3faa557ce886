//! Portable backups (filled in below).
