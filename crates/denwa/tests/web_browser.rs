//! The control panel in a real browser: `tests/browser/panel.test.mjs` drives Debian's chromium
//! (playwright-core) through sign-in, extensions, two real baresip phones registering and
//! calling, call history, backup/delete/restore, and the Japanese pages. This test starts the
//! server, creates the administrator and owns the phones; the script asks for them on stdout.
//! Needs node, `npm install` in tests/browser and chromium (scripts/test-deps.sh installs them).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};

/// The whole browser flow must finish within this.
const DEADLINE: Duration = Duration::from_secs(300);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn chromium() -> PathBuf {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        p.exists(),
        "chromium not found at {}: run scripts/test-deps.sh (apt-get install chromium)",
        p.display()
    );
    p
}

fn require_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "node is missing: run scripts/test-deps.sh (apt-get install nodejs npm)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test-deps.sh (npm ci in tests/browser)"
    );
}

#[test]
fn panel_in_a_real_browser() {
    require_node();
    let chromium = chromium();
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    d.cli_ok(&[
        "admin",
        "add",
        "admin",
        "--password",
        "correct horse battery",
    ]);
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
    let url = format!("http://127.0.0.1:{}", d.http_port);

    let mut node = Command::new("node")
        .arg(browser_dir().join("panel.test.mjs"))
        .current_dir(browser_dir())
        .env("DENWA_URL", &url)
        .env("DENWA_ADMIN", "admin")
        .env("DENWA_PASSWORD", "correct horse battery")
        .env("CHROMIUM", &chromium)
        .env("DENWA_PROMPT_WAV", &prompt_wav)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = node.stdout.take().expect("node stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut phones: HashMap<String, Phone> = HashMap::new();
    let mut passed = false;
    let fail = |d: &Denwa, node: &mut std::process::Child, msg: String| -> ! {
        let _ = node.kill();
        d.print_logs();
        panic!("{msg}");
    };
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                fail(&d, &mut node, "browser test timed out".into())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        println!("browser: {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["PHONE", number, password] => {
                let cfg = PhoneConfig::new(number).registering(&d.sip_addr(), password, 600);
                let mut p = Phone::start(cfg).expect("baresip starts");
                if let Err(e) = p.wait_event("REGISTER_OK", EVENT_TIMEOUT) {
                    fail(
                        &d,
                        &mut node,
                        format!("{number} did not register: {e}\n{}", p.logs()),
                    );
                }
                phones.insert(number.to_string(), p);
            }
            ["DIAL", from, to] => {
                let uri = format!("sip:{to}@{}", d.sip_addr());
                let Some(p) = phones.get_mut(*from) else {
                    fail(&d, &mut node, format!("no phone {from}"));
                };
                p.dial(&uri).expect("dial");
                if let Err(e) = p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT) {
                    fail(
                        &d,
                        &mut node,
                        format!("call {from} -> {to} not established: {e}"),
                    );
                }
            }
            ["PASS"] => passed = true,
            _ => {}
        }
    }
    let status = node.wait().expect("node exit");
    if !(status.success() && passed) {
        d.print_logs();
        panic!("browser test failed ({status}); see the FAIL line above");
    }
}
