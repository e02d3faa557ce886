//! Shared by the fake-clock micro-benchmarks (`blf_perf`, `register_perf`): phone `i` is
//! extension `2000 + i` at an address of its own, and sizes come from the environment.

/// The number in `name`, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Phone `i`'s extension number.
pub fn number(i: usize) -> String {
    format!("{}", 2000 + i)
}

/// Phone `i`'s address.
pub fn phone_addr(i: usize) -> String {
    format!("10.0.{}.{}:5060", i / 250, i % 250 + 1)
}
