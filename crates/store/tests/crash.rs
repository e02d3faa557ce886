//! Crash safety: SIGKILL the writing process mid-burst; every acknowledged write is there.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use store::{Backend, CdrQuery, Page, Store};

both_backends!(acknowledged_writes_survive_sigkill);

async fn acknowledged_writes_survive_sigkill(b: Backend) {
    let (url, _g) = common::fresh(b);
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Blocking reads on a plain thread: the child is killed from there once enough acks came.
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("ack ") {
                acked.push(rest.to_string());
            }
            if !killed && acked.len() >= 2000 {
                child.kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
        (acked, child.wait().unwrap())
    });
    let (acked, status) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "killed mid-burst, not finished: {status:?}"
    );
    assert!(acked.len() >= 2000);

    let s = Store::open(&url, common::opts()).await.unwrap();
    let mut contacts = HashSet::new();
    let mut offset = 0;
    loop {
        let page = s
            .list_bindings(Page {
                limit: 10_000,
                offset,
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len() as i64;
        contacts.extend(page.into_iter().map(|r| r.contact_uri));
    }
    let mut calls = HashSet::new();
    let mut offset = 0;
    loop {
        let q = CdrQuery {
            page: Page {
                limit: 10_000,
                offset,
            },
            ..CdrQuery::default()
        };
        let page = s.list_cdrs(&q).await.unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len() as i64;
        calls.extend(page.into_iter().map(|c| c.record.call_id));
    }
    let mut missing = 0;
    for a in &acked {
        let ok = match a.split_once(' ') {
            Some(("binding", c)) => contacts.contains(c),
            Some(("cdr", c)) => calls.contains(c),
            _ => panic!("unexpected line {a}"),
        };
        if !ok {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged writes lost",
        acked.len()
    );
}
