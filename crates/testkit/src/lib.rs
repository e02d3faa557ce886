//! `testkit`: helpers for Denwa's tests. Not part of the product.
//!
//! Tests that need a server start it themselves here, on 127.0.0.1 with free ports, and stop it
//! when the guard drops.

pub mod pg;
