//! Keeps the benchmark script working: `bench/run.sh --smoke` (tiny loads, no timing
//! assertions) against this build of Denwa and against Kamailio + rtpengine, with the report
//! written to a temporary file so the committed bench/RESULTS.md is left alone.

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bench_script_runs_every_load_against_both_servers() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let report = out_dir.path().join("RESULTS.md");
    let run = Command::new(repo_root().join("bench/run.sh"))
        .arg("--smoke")
        .arg("--out")
        .arg(&report)
        .env("DENWA_BIN", env!("CARGO_BIN_EXE_denwa"))
        .output()
        .expect("run bench/run.sh");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "bench/run.sh --smoke failed:\n{log}");

    // Every load ran against both servers and passed its tiny step.
    for load in ["reg", "cps", "trunk", "media"] {
        for server in ["denwa", "kamailio"] {
            assert!(
                log.lines()
                    .any(|l| l.contains(&format!("{server} {load}")) && l.contains("PASS")),
                "no passing {load} step for {server}:\n{log}"
            );
        }
    }
    let md = std::fs::read_to_string(&report).expect("report written");
    assert!(md.contains("smoke run"), "{md}");
    for table in [
        "## Registration storm",
        "## Call rate without media",
        "## Outbound calls through a trunk",
        "## Calls with relayed media",
        "## Memory per simultaneous call",
    ] {
        assert!(md.contains(table), "missing {table}:\n{md}");
    }
    // The media step measured RTP in both directions through each relay.
    let relayed = md
        .lines()
        .filter(|l| l.starts_with("| denwa | 5 |") || l.starts_with("| kamailio | 5 |"))
        .collect::<Vec<_>>();
    assert_eq!(relayed.len(), 2, "{md}");
    for l in relayed {
        assert!(
            l.contains("| 10 / 10 |"),
            "expected 10 RTP streams in and out: {l}"
        );
    }
}
