//! The report pages and the dashboard's "today vs the same weekday last week" panel in a real
//! browser, in English and Japanese: `tests/browser/reports.test.mjs` drives Debian's chromium
//! (playwright-core), screenshots every chart and checks the screenshots for coloured bars.
//! This test starts the server with known call records (today, yesterday and the same weekday
//! last week) aggregated into the report tables. Needs node, `npm ci` in tests/browser and
//! chromium (scripts/test-deps.sh installs them).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::Denwa;
use store::{Disposition, HangupBy, NewCdr, Store};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn record(i: usize, start: chrono::DateTime<Utc>, disp: Disposition) -> NewCdr {
    let answered = disp == Disposition::Answered;
    NewCdr {
        tenant_id: 1,
        call_id: format!("rb-{i}@test"),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: start,
        answer_time: answered.then(|| start + TimeDelta::seconds(4)),
        end_time: start + TimeDelta::seconds(60),
        duration_s: 60,
        billsec: if answered { 56 } else { 0 },
        disposition: disp,
        hangup_by: HangupBy::Caller,
        hangup_cause: String::new(),
        codec: "PCMU".into(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    }
}

#[test]
fn report_pages_draw_charts_in_both_languages() {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        chromium.exists(),
        "chromium not found: run scripts/test-deps.sh"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test-deps.sh (npm ci in tests/browser)"
    );
    let d = Denwa::start();
    d.cli_ok(&[
        "admin",
        "add",
        "admin",
        "--password",
        "correct horse battery",
    ]);
    // Today (minutes ago, so still today unless the test runs in the first minutes after
    // midnight UTC), yesterday, and the same weekday last week.
    let now = Utc::now();
    let mut recs = Vec::new();
    for k in 0..6 {
        let disp = if k % 3 == 2 {
            Disposition::NoAnswer
        } else {
            Disposition::Answered
        };
        let today = now - TimeDelta::seconds(30 + 40 * k);
        recs.push(record(recs.len(), today, disp));
        recs.push(record(recs.len(), today - TimeDelta::days(1), disp));
        recs.push(record(
            recs.len(),
            today - TimeDelta::days(7),
            Disposition::Answered,
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = Store::open(
            &store::default_url(d.data_dir()),
            store::OpenOptions::default(),
        )
        .await
        .expect("open");
        for r in &recs {
            s.insert_cdr(r.clone()).await.expect("insert");
        }
        s.close().await;
    });
    let out = d.cli_ok(&["report", "aggregate"]);
    assert!(
        out.contains(&format!("aggregated {} call records", recs.len())),
        "{out}"
    );

    let shots = tempfile::tempdir().expect("dir");
    let from = (now - TimeDelta::days(8)).date_naive().to_string();
    let to = now.date_naive().to_string();
    let mut node = Command::new("node");
    node.arg(browser_dir().join("reports.test.mjs"))
        .current_dir(browser_dir())
        .env("DENWA_URL", format!("http://127.0.0.1:{}", d.http_port))
        .env("DENWA_ADMIN", "admin")
        .env("DENWA_PASSWORD", "correct horse battery")
        .env("FROM", &from)
        .env("TO", &to)
        .env("SHOTS", shots.path())
        .env("CHROMIUM", &chromium);
    let mut child = testkit::proc::Proc::spawn("node", node).expect("start node");
    let status = child.wait_timeout(Duration::from_secs(180));
    let logs = child.logs();
    println!("{logs}");
    assert!(
        status.is_some_and(|s| s.success()),
        "browser test failed: {logs}"
    );
    for lang in ["en", "ja"] {
        for chart in ["days", "hours", "today"] {
            let p = shots.path().join(format!("reports-{lang}-{chart}.png"));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            assert!(
                len > 1000,
                "{} is a real screenshot ({len} bytes)",
                p.display()
            );
        }
        assert!(
            shots
                .path()
                .join(format!("dashboard-{lang}-today.png"))
                .exists()
        );
    }
    if let Ok(keep) = std::env::var("DENWA_KEEP_SHOTS") {
        for e in std::fs::read_dir(shots.path()).expect("shots").flatten() {
            let _ = std::fs::copy(e.path(), PathBuf::from(&keep).join(e.file_name()));
        }
    }
}
