//! Time conditions against a real `denwa serve` with sipp as the phones: the server's time
//! conditions run on an injected clock (`DENWA_TEST_TIMECOND_AT`, tests only), a call to the
//! condition's number reaches the day extension during office hours and the night extension
//! after a restart at 20:00; the manual override set by the `*28` + index feature code from a
//! phone sends calls to night at once and survives the restart; `route test --at` shows the
//! decision and why.

mod common;

use std::time::Duration;

use common::{Denwa, Opts, sipp_user};
use testkit::sipp::{RunningSipp, Sipp};

fn register(d: &Denwa, user: &str, password: &str) -> u16 {
    let port = testkit::ports::free_port().expect("port");
    let mut s = Sipp::uac("register.xml", &d.sip_addr());
    s.local_port = Some(port);
    s.inject_text = Some(sipp_user(user, password));
    s.run().expect("phone registers");
    port
}

/// A phone answering every call (at most `calls`) on `port`.
fn phone(port: u16, user: &str) -> RunningSipp {
    let mut s = Sipp::uas("uas_answer.xml");
    s.local_port = Some(port);
    s.service = Some(user.into());
    s.calls = 5;
    s.timeout = Duration::from_secs(120);
    let mut r = s.spawn().expect("uas starts");
    r.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    r
}

fn invites(p: &RunningSipp) -> usize {
    p.messages_so_far().matches("INVITE sip:").count()
}

/// 1001 calls `number`; the call must complete.
fn call(d: &Denwa, number: &str, scenario: &str) {
    let mut s = Sipp::uac(scenario, &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-tc01"));
    s.service = Some(number.into());
    s.timeout = Duration::from_secs(30);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("call 1001 -> {number}: {e}")
    });
    assert_eq!(out.successful, 1);
}

fn at(when: &str) -> Opts {
    Opts {
        env: vec![("DENWA_TEST_TIMECOND_AT".into(), when.into())],
        ..Opts::default()
    }
}

#[test]
fn office_hours_switch_with_the_clock_and_the_override() {
    // Tuesday 8 December 2026, 10:00 in Tokyo.
    let mut d = Denwa::start_with(at("2026-12-08T10:00:00+09:00"));
    d.add_extension("1001", "secret-tc01");
    d.add_extension("1002", "secret-tc02");
    d.add_extension("1003", "secret-tc03");
    d.cli_ok(&[
        "timecond",
        "calendar",
        "set",
        "--timezone",
        "Asia/Tokyo",
        "--japan",
        "true",
    ]);
    d.cli_ok(&[
        "timecond",
        "add",
        "office",
        "--number",
        "600",
        "--index",
        "1",
        "--weekly",
        "mon-fri 09:00-18:00",
        "--holidays",
        "true",
        "--matched",
        "ext:1002",
        "--unmatched",
        "ext:1003",
    ]);
    let day_port = register(&d, "1002", "secret-tc02");
    let night_port = register(&d, "1003", "secret-tc03");
    let day = phone(day_port, "1002");
    let night = phone(night_port, "1003");
    d.wait_until("time condition loaded", Duration::from_secs(10), || {
        d.cli_ok(&["route", "test", "--from", "1001", "--number", "600"])
            .contains("timecond office: day")
    });

    // Office hours: the day phone rings.
    call(&d, "600", "uac_call.xml");
    assert_eq!(
        (invites(&day), invites(&night)),
        (1, 0),
        "office hours go to 1002"
    );

    // *281 from the phone: forced night (the PBX answers, says so and hangs up).
    call(&d, "*281", "uac_call_wait_bye.xml");
    let mut list = String::new();
    d.wait_until("override stored", Duration::from_secs(10), || {
        list = d.cli_ok(&["timecond", "list"]);
        list.contains("night  night")
    });
    assert!(list.contains("forced night"), "{list}");
    call(&d, "600", "uac_call.xml");
    assert_eq!(
        (invites(&day), invites(&night)),
        (1, 1),
        "forced night goes to 1003"
    );

    // Restart at 20:00 the same day: the override survived; back to auto, the schedule says
    // night.
    d.terminate();
    d.opts = at("2026-12-08T20:00:00+09:00");
    d.spawn();
    let list = d.cli_ok(&["timecond", "list"]);
    assert!(
        list.contains("office         600      1     night"),
        "{list}"
    );
    d.cli_ok(&["timecond", "mode", "office", "auto"]);
    d.wait_until("auto mode loaded", Duration::from_secs(10), || {
        d.cli_ok(&["route", "test", "--from", "1001", "--number", "600"])
            .contains("outside the weekly schedule")
    });
    call(&d, "600", "uac_call.xml");
    assert_eq!(
        (invites(&day), invites(&night)),
        (1, 2),
        "after hours go to 1003"
    );

    // `route test --at` shows the decision at any time, with the reason.
    let t = d.cli_ok(&[
        "route",
        "test",
        "--from",
        "1001",
        "--number",
        "600",
        "--at",
        "2026-12-09T11:00:00+09:00",
    ]);
    assert!(t.contains("ext:1002"), "{t}");
    assert!(t.contains("within mon-fri 09:00-18:00"), "{t}");
    // A national holiday (2026-11-23, Labour Thanksgiving Day) is closed.
    let t = d.cli_ok(&[
        "route",
        "test",
        "--from",
        "1001",
        "--number",
        "600",
        "--at",
        "2026-11-23T11:00:00+09:00",
    ]);
    assert!(t.contains("ext:1003") && t.contains("勤労感謝の日"), "{t}");
    // The call records keep one record per call.
    let cdrs = d.cdrs();
    assert!(cdrs.iter().filter(|c| c["callee"] == "600").count() >= 3);
    drop((day, night));
}

#[test]
fn bad_time_condition_input_is_refused_precisely() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-tc01");
    let out = d.cli(&[
        "timecond",
        "add",
        "office",
        "--weekly",
        "weekdays 9-5",
        "--matched",
        "ext:1001",
        "--unmatched",
        "hangup",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--weekly") && err.contains("HH:MM"), "{err}");
    let out = d.cli(&[
        "timecond",
        "add",
        "office",
        "--number",
        "1001",
        "--matched",
        "ext:1001",
        "--unmatched",
        "hangup",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("1001 is already the number of extension 1001")
    );
    // A feature code that shadows an extension is refused.
    let out = d.cli(&["features", "set", "dnd_toggle", "1001"]);
    assert!(!out.status.success());
    let ics = d.data_dir().join("bad.ics");
    std::fs::write(
        &ics,
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261224T180000Z\nSUMMARY:Party\nEND:VEVENT\nEND:VCALENDAR\n",
    )
    .expect("write");
    let out = d.cli(&[
        "timecond",
        "calendar",
        "import",
        ics.to_str().expect("utf-8"),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not all-day"));
}
