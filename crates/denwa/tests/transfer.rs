//! Call transfer against a real `denwa serve` with real phones (baresip): a blind transfer by
//! baresip's `transfer` command with audio checked between the transferee and the target; a
//! transfer to a number the transferor may not call refused with the call kept (audio checked);
//! a REFER from a third party (forged tags, or no dialog at all) refused while the call goes on;
//! a blind transfer to an IVR number, the transferee leaving a message through the menu.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Denwa;
use common::xfer::*;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

fn pbx() -> Denwa {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.add_extension("1003", "carol-secret-d");
    d
}

#[test]
fn blind_transfer_from_baresip_joins_the_caller_and_the_target() {
    let mut d = pbx();
    silence_while_ringing(&mut d);
    let audio = tempfile::tempdir().expect("tmp");
    // The caller's tones start 6 s into its call: after the transfer, so only the target
    // hears them. The transferor is silent; the target sends its tones once it answers.
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 6000, 30_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let c_wav = tones(audio.path(), "c.wav", &CALLEE_TONES, 600, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    let mut c = phone(&d, "1003", "carol-secret-d", &c_wav);

    let started = Instant::now();
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "transferor");
    std::thread::sleep(Duration::from_millis(500));
    transfer_to(&d, &mut b, "1003");
    established(&d, &mut c, "target");
    call_closed(&d, &mut b, "the transferor's call should end");
    assert!(
        started.elapsed() < Duration::from_millis(5500),
        "the transfer took too long for the tone timing: {:?}",
        started.elapsed()
    );
    talk_then_check(&mut a, &mut c, started, 6000);

    let logs = d.logs();
    assert!(logs.contains("blind transfer accepted"), "{logs}");
    assert!(logs.contains("transfer completed"), "{logs}");
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs.len(), 1, "one call, one record: {cdrs:?}");
    assert_eq!(cdrs[0]["caller"], "1001");
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
}

#[test]
fn transfer_to_a_number_the_extension_may_not_call_is_refused_and_the_call_kept() {
    // baresip 1.0 hangs its own call up when a transfer fails, so the transferor here is sipp
    // (uac_refer_refused.xml): it calls 1001 (baresip), streams tones, REFERs the call to an
    // outside number its class of service does not allow, expects 403 and talks on.
    let d = pbx();
    testkit::require_binary("sipp").unwrap_or_else(|e| panic!("{e}"));
    let carrier = testkit::ports::free_port().expect("port");
    d.cli_ok(&[
        "trunk",
        "add",
        "carrier",
        "--host",
        &format!("127.0.0.2:{carrier}"),
    ]);
    d.cli_ok(&[
        "route",
        "add",
        "national",
        "--pattern",
        "0|0ZXXXXXXXX",
        "--trunk",
        "carrier",
        "--cos",
        "national",
    ]);
    d.cli_ok(&["extension", "edit", "1002", "--cos", "internal"]);
    d.wait_until("the route to be loaded", Duration::from_secs(20), || {
        d.logs().contains("trunks and routes loaded")
    });
    let work = tempfile::tempdir().expect("tmp");
    // The tones start 2 s after the answer: after the refused REFER.
    let layout = ToneLayout {
        lead_ms: 2000,
        ..ToneLayout::default()
    };
    let samples = tone::tone_sequence(&CALLEE_TONES, &layout);
    tone::write_ulaw_wav(&work.path().join("rtp_tones.wav"), &samples).expect("wav");
    let quiet = tones(work.path(), "quiet.wav", &[], 0, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &quiet);

    let mut s = testkit::sipp::Sipp::uac("uac_refer_refused.xml", &d.sip_addr());
    s.inject_text = Some(common::sipp_user("1002", "bob-secret-cc"));
    s.service = Some("1001".into());
    s.workdir = Some(work.path().to_path_buf());
    s.vars = vec![("refer_to".into(), "00312345678".into())];
    s.call_duration =
        Duration::from_millis(u64::from(layout.sequence_ms(CALLEE_TONES.len())) + 1000);
    s.timeout = Duration::from_secs(60);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the REFER should be refused with 403 and the call go on: {e}")
    });
    assert_eq!(out.successful, 1);
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
    let heard = a.last_recording().expect("recording");
    tone::check_recording(&heard, &CALLEE_TONES, &CALLER_TONES)
        .unwrap_or_else(|e| panic!("the call was not kept after the refusal: {e}"));
    let logs = d.logs();
    assert!(
        logs.contains("transfer refused; the call is kept"),
        "{logs}"
    );
    assert!(
        logs.contains("calls not allowed (class of service internal)"),
        "{logs}"
    );
    assert!(!logs.contains("transfer completed"));
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["hangup_by"], "caller", "{:?}", cdrs[0]);
}

/// The SIP Call-ID of the call `caller` started, from the server log.
fn call_id_in_log(d: &Denwa, caller: &str) -> String {
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("call started") && l.contains(&format!("caller={caller}")))
        .unwrap_or_else(|| panic!("no call started by {caller}: {logs}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("call_id="))
        .expect("call_id in the log line")
        .trim_matches('"')
        .to_string()
}

/// Sends `req` from a fresh socket and returns the status of the first final answer.
fn send_raw(d: &Denwa, req: &str) -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = s.local_addr().expect("addr").port();
    let req = req.replace("PORT", &port.to_string());
    s.send_to(req.as_bytes(), d.sip_addr()).expect("send");
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = s.recv_from(&mut buf).expect("an answer");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            return status;
        }
    }
}

#[test]
fn refer_from_a_third_party_is_refused_and_the_call_goes_on() {
    let d = pbx();
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 3000, 30_000);
    let b_wav = tones(audio.path(), "b.wav", &CALLEE_TONES, 3000, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    let started = Instant::now();
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "callee");
    let call_id = call_id_in_log(&d, "1001");
    let sip = d.sip_addr();
    // The right Call-ID with made-up tags.
    let forged = format!(
        "REFER sip:1002@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:PORT;branch=z9hG4bK-forged1\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{sip}>;tag=guess1\r\nTo: <sip:1002@{sip}>;tag=guess2\r\nCall-ID: {call_id}\r\nCSeq: 99 REFER\r\nContact: <sip:evil@127.0.0.1:PORT>\r\nRefer-To: <sip:1003@{sip}>\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(send_raw(&d, &forged), 481);
    // No dialog at all.
    let stray = format!(
        "REFER sip:1002@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:PORT;branch=z9hG4bK-stray1\r\nMax-Forwards: 70\r\nFrom: <sip:evil@{sip}>;tag=e1\r\nTo: <sip:1002@{sip}>\r\nCall-ID: stray-refer-1\r\nCSeq: 1 REFER\r\nContact: <sip:evil@127.0.0.1:PORT>\r\nRefer-To: <sip:1003@{sip}>\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(send_raw(&d, &stray), 403);
    let logs = d.logs();
    assert!(logs.contains("REFER refused"), "{logs}");
    assert!(logs.contains("REFER outside a dialog refused"), "{logs}");
    let seq = ToneLayout {
        lead_ms: 3000,
        ..ToneLayout::default()
    }
    .sequence_ms(CALLER_TONES.len());
    play_until(started, seq + 1000);
    testkit::baresip::hang_up_and_check_tones(
        &mut a,
        &mut b,
        &CALLER_TONES,
        &CALLEE_TONES,
        EVENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("the call did not go on unharmed: {e}"));
}

/// `%`-escapes what a URI header value may not hold (`;`, `=`, `@`, `%`, ...).
fn uri_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn attended_transfer_by_refer_with_replaces_joins_the_other_parties_with_audio() {
    // 1002 is sipp (it can hold two dialogs: uac_consult.xml and uac_attended_refer.xml);
    // 1001 and 1003 are baresip phones whose audio is checked once the PBX joined them.
    let d = pbx();
    testkit::require_binary("sipp").unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().expect("tmp");
    // Both phones' tones start 6 s into their calls, after the join.
    let a_wav = tones(work.path(), "a.wav", &CALLER_TONES, 6000, 30_000);
    let c_wav = tones(work.path(), "c.wav", &CALLEE_TONES, 6000, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut c = phone(&d, "1003", "carol-secret-d", &c_wav);
    let started = Instant::now();

    // The consultation call 1002 → 1003, which logs its dialog's identifiers.
    let log = work.path().join("consult.log");
    let mut consult = testkit::sipp::Sipp::uac("uac_consult.xml", &d.sip_addr());
    consult.inject_text = Some(common::sipp_user("1002", "bob-secret-cc"));
    consult.service = Some("1003".into());
    consult.workdir = Some(work.path().to_path_buf());
    consult.timeout = Duration::from_secs(60);
    consult.extra_args = vec![
        "-trace_logs".into(),
        "-log_file".into(),
        log.display().to_string(),
    ];
    let consult = consult.spawn().expect("consultation call starts");
    established(&d, &mut c, "target");
    let mut replaces = String::new();
    d.wait_until("the consultation dialog", Duration::from_secs(10), || {
        replaces = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.split("REPLACES ")
                    .nth(1)
                    .map(str::trim)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        !replaces.is_empty()
    });

    // The call to be transferred, 1002 → 1001, REFERred to 1003 replacing the consultation.
    let csv = format!(
        "SEQUENTIAL\n1002;[authentication username=1002 password=bob-secret-cc];bob-secret-cc;1003;{}\n",
        uri_escape(&replaces)
    );
    let mut s = testkit::sipp::Sipp::uac("uac_attended_refer.xml", &d.sip_addr());
    s.inject_text = Some(csv);
    s.service = Some("1001".into());
    s.workdir = Some(work.path().to_path_buf());
    s.timeout = Duration::from_secs(60);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("attended transfer by REFER with Replaces: {e}")
    });
    assert_eq!(out.successful, 1);
    consult.finish().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the consultation call should end by the PBX's BYE: {e}")
    });
    established(&d, &mut a, "transferee");
    assert!(
        started.elapsed() < Duration::from_millis(5500),
        "the join took too long for the tone timing: {:?}",
        started.elapsed()
    );
    talk_then_check(&mut a, &mut c, started, 6000);
    let logs = d.logs();
    assert!(logs.contains("attended transfer completed"), "{logs}");
    let mut cdrs = Vec::new();
    d.wait_until("two call records", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        cdrs.len() >= 2
    });
    assert_eq!(
        cdrs.len(),
        2,
        "the joined call and the consultation: {cdrs:?}"
    );
}

/// A full-scope API key made in the server's database (as the panel would).
#[test]
fn transfer_from_the_api_with_audio_and_events_in_the_record() {
    testkit::require_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let mut d = pbx();
    silence_while_ringing(&mut d);
    let token = api_token(&d);
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 6000, 30_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let c_wav = tones(audio.path(), "c.wav", &CALLEE_TONES, 600, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    let mut c = phone(&d, "1003", "carol-secret-d", &c_wav);

    let started = Instant::now();
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "callee");
    let (code, calls) = api(&d, &token, "GET", "/calls", None);
    assert_eq!(code, 200, "{calls}");
    let calls: serde_json::Value = serde_json::from_str(&calls).expect("JSON");
    let id = calls["items"][0]["id"].as_u64().expect("a call id");
    // A number nobody has: refused, the call kept.
    let (code, body) = api(
        &d,
        &token,
        "POST",
        &format!("/calls/{id}/transfer"),
        Some(r#"{"to":"1999"}"#),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = api(
        &d,
        &token,
        "POST",
        &format!("/calls/{id}/transfer"),
        Some(r#"{"to":"1003"}"#),
    );
    assert_eq!(code, 202, "{body}");
    established(&d, &mut c, "target");
    call_closed(&d, &mut b, "the transferring phone should be released");
    talk_then_check(&mut a, &mut c, started, 6000);

    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs.len(), 1, "one call, one record");
    let cdr_id = cdrs[0]["id"].as_i64().expect("record id");
    let mut events = serde_json::Value::Null;
    d.wait_until("the call's events", Duration::from_secs(10), || {
        let (_, body) = api(&d, &token, "GET", &format!("/cdrs/{cdr_id}/events"), None);
        events = serde_json::from_str(&body).unwrap_or_default();
        events["total"] == 1
    });
    let e = &events["items"][0];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["by"].as_str(),
            e["party"].as_str(),
            e["target"].as_str()
        ),
        (Some("blind"), Some("1002"), Some("1001"), Some("1003")),
        "{events}"
    );
}

#[test]
fn transferee_hears_music_while_the_target_rings() {
    let d = pbx();
    d.cli_ok(&["moh", "install-default"]);
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 6000, 30_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    // The target answers by hand, 2 s after it starts ringing.
    let cfg = PhoneConfig {
        answer: testkit::baresip::AnswerMode::Manual,
        ..PhoneConfig::new("1003")
            .registering(&d.sip_addr(), "carol-secret-d", 600)
            .with_audio(&quiet)
    };
    let mut c = Phone::start(cfg).expect("baresip starts");
    c.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("target registers");

    let started = Instant::now();
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "transferor");
    b.command("transfer", Some(&format!("sip:1003@{}", d.sip_addr())))
        .expect("transfer command");
    c.wait_event("CALL_INCOMING", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the target should ring: {e}")
        });
    std::thread::sleep(Duration::from_secs(2));
    c.accept().expect("answer");
    established(&d, &mut c, "target");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("the transferor is released");
    let seq = ToneLayout {
        lead_ms: 6000,
        ..ToneLayout::default()
    }
    .sequence_ms(CALLER_TONES.len());
    play_until(started, seq + 1000);
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("caller closed");
    c.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("target closed");
    // The target hears the caller, who is back on the relay after the music.
    tone::check_recording(&c.last_recording().expect("recording"), &CALLER_TONES, &[])
        .unwrap_or_else(|e| panic!("the target did not hear the caller: {e}"));
    // The music endpoint sent about 2 s of audio (50 packets/s) to the caller, then closed.
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("media endpoint closed"))
        .unwrap_or_else(|| panic!("the music endpoint closed: {logs}"));
    let tx: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tx="))
        .and_then(|v| v.parse().ok())
        .expect("tx count");
    assert!(
        (50..=250).contains(&tx),
        "about 100 packets of music: {line}"
    );
    assert!(logs.contains("transfer completed"), "{logs}");
}

/// A blind transfer (baresip `/transfer`) to an IVR number: the transferee is re-INVITEd onto
/// the menu, presses 3 and leaves a message for 1002 that holds its tones.
#[test]
fn blind_transfer_to_an_ivr_then_the_transferee_leaves_a_message() {
    let d = pbx();
    d.cli_ok(&["voicemail", "pin", "1002", "--pin", "2580"]);
    d.cli_ok(&[
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "ivr-welcome",
        "--option",
        "3=vm:1002",
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs()
            .lines()
            .any(|l| l.contains("voice applications loaded") && l.contains("ivrs=1"))
    });
    let audio = tempfile::tempdir().expect("tmp");
    // 1001's tones come after the transfer, the menu choice (at 2 s) and the mailbox greeting
    // (about 7 s of prompts): the recording starts about 9 s into the call.
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 11_500, 40_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut c = phone(&d, "1003", "carol-secret-d", &quiet);
    a.dial(&format!("sip:1003@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut c, "transferor");
    std::thread::sleep(Duration::from_millis(500));
    transfer_to(&d, &mut c, "500");
    call_closed(&d, &mut c, "the transferor is released");
    d.wait_until("on the menu", EVENT_TIMEOUT, || {
        d.logs().contains("transferred party on our endpoint")
    });
    std::thread::sleep(Duration::from_millis(1500));
    a.send_dtmf("3").expect("DTMF");
    a.wait_event("CALL_CLOSED", Duration::from_secs(45))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    let mut msgs: Vec<serde_json::Value> = Vec::new();
    d.wait_until("the message indexed", Duration::from_secs(10), || {
        let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
        msgs = serde_json::from_str(&list).expect("json");
        msgs.len() == 1
    });
    assert_eq!(msgs[0]["caller"], "1001", "{}", msgs[0]);
    let file = PathBuf::from(msgs[0]["path"].as_str().expect("path"));
    tone::check_recording(&file, &CALLER_TONES, &CALLEE_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the message does not hold the transferee's tones: {e}")
    });
    let logs = d.logs();
    assert!(
        logs.contains("blind transfer to an application accepted"),
        "{logs}"
    );
}
