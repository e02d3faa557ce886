//! baresip driver (being written).
