//! Call pickup against a real `denwa serve` with baresip phones: 1001 calls 1002, whose phone
//! rings (manual answer); 1003, in the same pickup group, picks the call up by directed pickup
//! (`**1002`) and then by group pickup (`*8`); the caller and the picking phone hear each
//! other through the relay, the ringing phone stops ringing, and the call keeps one record
//! naming who answered. 1004, outside the pickup group, is refused.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{AnswerMode, Phone, PhoneConfig, hang_up_and_check_tones};
use testkit::sipp::Sipp;
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Each phone's password (one that does not contain the extension number).
fn pw(user: &str) -> String {
    let letters: String = user
        .bytes()
        .map(|b| char::from(b'a' + b.saturating_sub(b'0') % 26))
        .collect();
    format!("secret-{letters}")
}

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, wav: &std::path::Path, answer: AnswerMode) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), &pw(user), 600)
        .with_audio(wav);
    cfg.answer = answer;
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

/// 1001 calls 1002 and 1002's phone rings.
fn ring(d: &Denwa, caller: &mut Phone, desk: &mut Phone) {
    desk.clear_events();
    caller
        .dial(&format!("sip:1002@{}", d.sip_addr()))
        .expect("dial");
    desk.wait_event("CALL_INCOMING", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("1002 does not ring: {e}")
        });
}

/// `who` dials `code`; the call must be refused with `status`.
fn refused(d: &Denwa, who: &str, code: &str) -> u16 {
    let mut s = Sipp::uac(
        testkit::carrier::scenario_path("carrier_uac_refused.xml"),
        &d.sip_addr(),
    );
    let pw = pw(who);
    s.inject_text = Some(format!(
        "SEQUENTIAL\n{who};[authentication username={who} password={pw}];{pw};Caller;;;\n"
    ));
    s.service = Some(code.into());
    s.timeout = Duration::from_secs(30);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("{who} -> {code} was not refused: {e}")
    });
    [403u16, 404, 480]
        .into_iter()
        .find(|st| out.message_count(&st.to_string(), "Recv") > 0)
        .unwrap_or(0)
}

/// The picker dials `code`; caller and picker talk, the desk phone stops ringing.
fn pick(d: &Denwa, caller: &mut Phone, picker: &mut Phone, desk: &mut Phone, code: &str) {
    caller.clear_events();
    picker.clear_events();
    picker
        .dial(&format!("sip:{code}@{}", d.sip_addr()))
        .expect("dial");
    picker
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("picker: {e}")
        });
    caller
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("caller answered by the pickup");
    desk.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("the desk phone stopped ringing");
    let seq = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    hang_up_and_check_tones(caller, picker, &CALLER_TONES, &CALLEE_TONES, EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{code}: {e}")
        });
}

#[test]
fn directed_and_group_pickup_with_audio_and_refusal_outside_the_group() {
    let d = Denwa::start();
    for n in ["1001", "1002", "1003", "1004"] {
        d.add_extension(n, &pw(n));
    }
    d.cli_ok(&["pickup", "set", "1002", "sales"]);
    d.cli_ok(&["pickup", "set", "1003", "sales", "support"]);
    d.cli_ok(&["pickup", "set", "1004", "support"]);
    let list = d.cli_ok(&["pickup", "list"]);
    assert!(list.contains("sales            1002, 1003"), "{list}");
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = tone_file(audio.path(), "b.wav", &CALLEE_TONES);
    let mut caller = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut desk = phone(&d, "1002", &b_wav, AnswerMode::Manual);
    let mut picker = phone(&d, "1003", &b_wav, AnswerMode::Auto);

    // Nothing rings yet.
    assert_eq!(refused(&d, "1003", "*8"), 404);
    ring(&d, &mut caller, &mut desk);
    // 1004 shares no pickup group with 1002.
    assert_eq!(refused(&d, "1004", "**1002"), 403);
    assert_eq!(refused(&d, "1004", "*8"), 404);
    pick(&d, &mut caller, &mut picker, &mut desk, "**1002");

    ring(&d, &mut caller, &mut desk);
    pick(&d, &mut caller, &mut picker, &mut desk, "*8");

    let mut cdrs = Vec::new();
    d.wait_until("two answered records", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        cdrs.iter()
            .filter(|c| c["disposition"] == "ANSWERED")
            .count()
            == 2
    });
    for c in cdrs.iter().filter(|c| c["disposition"] == "ANSWERED") {
        assert_eq!(c["caller"], "1001", "{c}");
        assert_eq!(c["callee"], "1003", "the record names who answered: {c}");
    }
    // The refused attempts and the two pickers' own INVITEs leave no answered record; the
    // refusals are recorded as failed.
    assert_eq!(
        cdrs.iter().filter(|c| c["disposition"] == "FAILED").count(),
        3,
        "{cdrs:?}"
    );
}
