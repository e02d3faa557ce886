//! Bounded, per-peer rate-limited logging (placeholder; filled in by the abuse-bounds work).
