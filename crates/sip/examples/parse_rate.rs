//! Parses the benchmark INVITE N times (default 1,000,000) so that `perf stat -e task-clock`
//! gives CPU time per message independent of other load on the machine:
//! `perf stat -e task-clock cargo run --release -p sip --example parse_rate -- 2000000`.

/// The benchmark INVITE (`benches/invite.sip`).
const INVITE: &[u8] = include_bytes!("../benches/invite.sip");

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut ok = 0u64;
    let start = std::time::Instant::now();
    for _ in 0..n {
        if std::hint::black_box(sip::parse_message(std::hint::black_box(INVITE))).is_ok() {
            ok += 1;
        }
    }
    let wall = start.elapsed();
    println!(
        "{ok}/{n} parsed in {wall:?} wall ({:.0} msg/s wall)",
        n as f64 / wall.as_secs_f64()
    );
}
