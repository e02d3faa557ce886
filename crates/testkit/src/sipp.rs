//! sipp runner (being written).
