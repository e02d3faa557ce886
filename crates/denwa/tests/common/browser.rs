//! What the tests driving Chromium need: the scripts' directory, the browser, node with
//! playwright-core (scripts/test-deps.sh installs them).

use std::path::PathBuf;
use std::process::Command;

/// `tests/browser` (the scripts and their node_modules).
pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Debian's chromium (`CHROMIUM` overrides the path).
pub fn chromium() -> PathBuf {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        p.exists(),
        "chromium not found at {}: run scripts/test-deps.sh (apt-get install chromium)",
        p.display()
    );
    p
}

/// Fails the test with the setup step when node or playwright-core is missing.
pub fn require_node() {
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

/// Runs `tests/browser/SCRIPT` with node against `d` (`DENWA_URL`, `CHROMIUM`, the
/// administrator `admin` / [`ADMIN_PASSWORD`] and `env` set), printing what it prints and
/// handing each line, split in words, to `on_line` (a script asks for phones and calls that
/// way). Fails the test, with the server's log, on a handler's error, on `deadline`, or unless
/// the script prints `PASS` and exits 0.
pub fn run_script(
    d: &super::Denwa,
    script: &str,
    env: &[(&str, &std::ffi::OsStr)],
    deadline: std::time::Duration,
    mut on_line: impl FnMut(&[&str]) -> Result<(), String>,
) {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    require_node();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .env("DENWA_URL", format!("http://127.0.0.1:{}", d.http_port))
        .env("DENWA_ADMIN", "admin")
        .env("DENWA_PASSWORD", ADMIN_PASSWORD)
        .env("CHROMIUM", chromium())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = cmd.spawn().expect("start node");
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
    let fail = |node: &mut std::process::Child, msg: String| -> ! {
        let _ = node.kill();
        let _ = node.wait();
        d.print_logs();
        panic!("{msg}");
    };
    let start = std::time::Instant::now();
    let mut passed = false;
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                fail(&mut node, format!("browser test {script} timed out"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        println!("browser: {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words == ["PASS"] {
            passed = true;
        } else if let Err(e) = on_line(&words) {
            fail(&mut node, e);
        }
    }
    let status = node.wait().expect("node exit");
    if !(status.success() && passed) {
        d.print_logs();
        panic!("browser test {script} failed ({status}); see the FAIL line above");
    }
}

/// The administrator's password [`run_script`] passes (create `admin` with it first).
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Creates the administrator `admin` with [`ADMIN_PASSWORD`], whom [`run_script`] signs in as.
pub fn add_admin(d: &super::Denwa) {
    d.cli_ok(&["admin", "add", "admin", "--password", ADMIN_PASSWORD]);
}
