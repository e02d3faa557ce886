//! The control panel in a real browser: `tests/browser/panel.test.mjs` drives Debian's chromium
//! (playwright-core) through sign-in, extensions, two real baresip phones registering and
//! calling, call history, backup/delete/restore, and the Japanese pages. This test starts the
//! server, creates the administrator and owns the phones; the script asks for them on stdout.
//! Needs node, `npm install` in tests/browser and chromium (scripts/test-deps.sh installs them).

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::Denwa;
use common::browser::{add_admin, chromium, require_node, run_script};
use testkit::baresip::{Phone, PhoneConfig};

/// The whole browser flow must finish within this.
const DEADLINE: Duration = Duration::from_secs(300);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn panel_in_a_real_browser() {
    require_node();
    chromium();
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    add_admin(&d);
    // The prompts page plays a synthesised default and an upload made here.
    d.cli_ok(&[
        "prompt",
        "install-defaults",
        "--lang",
        "en",
        "--id",
        "goodbye",
    ]);
    d.cli_ok(&["moh", "install-default"]);
    let prompt_wav = d.data_dir().join("upload-me.wav");
    let st = Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2"])
        .arg(&prompt_wav)
        .args(["synth", "1.5", "sine", "500", "vol", "0.5"])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox makes the upload");
    let mut phones: HashMap<String, Phone> = HashMap::new();
    run_script(
        &d,
        "panel.test.mjs",
        &[("DENWA_PROMPT_WAV", prompt_wav.as_os_str())],
        DEADLINE,
        |words| {
            match words {
                ["PHONE", number, password] => {
                    let cfg = PhoneConfig::new(number).registering(&d.sip_addr(), password, 600);
                    let mut p = Phone::start(cfg).expect("baresip starts");
                    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
                        .map_err(|e| format!("{number} did not register: {e}\n{}", p.logs()))?;
                    phones.insert(number.to_string(), p);
                }
                ["DIAL", from, to] => {
                    let uri = format!("sip:{to}@{}", d.sip_addr());
                    let p = phones
                        .get_mut(*from)
                        .ok_or_else(|| format!("no phone {from}"))?;
                    p.dial(&uri).expect("dial");
                    p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
                        .map_err(|e| format!("call {from} -> {to} not established: {e}"))?;
                }
                _ => {}
            }
            Ok(())
        },
    );
}
