//! The witness SQL against a real PostgreSQL (a private cluster from `testkit`), driven through
//! `psql`: the statements behave as [`ha::witness::LeaseRow`] models them (a fixed sequence and a
//! seeded random one, answer for answer), and racing acquires on a free row grant exactly one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ha::witness::{
    LeaseRow, SQL_ACQUIRE, SQL_ACQUIRE_AFTER_FENCE, SQL_CLEAR_ALONE, SQL_CREATE, SQL_INIT,
    SQL_MARK_ALONE, SQL_MIGRATE, SQL_READ, SQL_RELEASE, SQL_RENEW, answer_from_rows,
};
use ha::{Epoch, LeaseAnswer, LeaseOp, LeaseRequest, NodeId};

/// Moves the lease's end into the past, as time passing on the witness would.
const EXPIRE: &str =
    "UPDATE denwa_ha_lease SET until = clock_timestamp() - interval '1 millisecond';";

/// Prepare every statement and run `exec` (EXECUTE lines) in one psql session; rows as
/// `holder|token|ttl_ms|alone|alone_since` lines.
fn run(url: &str, exec: &str) -> Vec<String> {
    let script = format!(
        "{SQL_CREATE};\n\
         {SQL_MIGRATE};\n\
         PREPARE init(text) AS {SQL_INIT};\n\
         PREPARE mark(text, int4, int8, int8) AS {SQL_MARK_ALONE};\n\
         PREPARE acquire_fenced(text, int4, int8, int8) AS {SQL_ACQUIRE_AFTER_FENCE};\n\
         PREPARE clear(text, int4, int8, int8) AS {SQL_CLEAR_ALONE};\n\
         PREPARE acquire(text, int4, int8, int8) AS {SQL_ACQUIRE};\n\
         PREPARE renew(text, int4, int8, int8) AS {SQL_RENEW};\n\
         PREPARE release(text, int4, int8) AS {SQL_RELEASE};\n\
         PREPARE read(text) AS {SQL_READ};\n\
         EXECUTE init('pair');\n\
         {exec}\n"
    );
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut stdin) = c.stdin.take() {
                stdin.write_all(script.as_bytes())?;
            }
            c.wait_with_output()
        })
        .expect("psql runs (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn fields(row: &str) -> (String, i64, i64) {
    let f: Vec<&str> = row.split('|').collect();
    assert_eq!(f.len(), 5, "{row}");
    (
        f[0].to_string(),
        f[1].parse().expect("token"),
        f[2].parse().expect("ttl"),
    )
}

#[test]
fn lease_statements_behave_as_the_model() {
    let db = testkit::pg::fresh_database().expect("postgres");
    let url = db.url();
    // Free row: node 1 acquires token 1 for 60 s (long: psql start-up under load must not expire it).
    let r = run(url, "EXECUTE acquire('pair', 1, 0, 60000);");
    let (holder, token, ttl) = fields(&r[0]);
    assert_eq!((holder.as_str(), token), ("1", 1));
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    // Held: node 2's acquire returns no row; the read says who holds it.
    let r = run(
        url,
        "EXECUTE acquire('pair', 2, 0, 60000); EXECUTE read('pair');",
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(fields(&r[0]).0, "1");
    // Renew with a wrong token: no row. With the right one: moved on.
    assert!(run(url, "EXECUTE renew('pair', 1, 9, 60000);").is_empty());
    assert!(run(url, "EXECUTE renew('pair', 2, 1, 60000);").is_empty());
    assert_eq!(
        fields(&run(url, "EXECUTE renew('pair', 1, 1, 60000);")[0]).1,
        1
    );
    // The acquire recorded node 1 as running alone: released, node 2 is still refused, and the
    // row says why.
    assert_eq!(run(url, "EXECUTE release('pair', 1, 1);").len(), 1);
    assert!(run(url, "EXECUTE acquire('pair', 2, 10, 60000);").is_empty());
    let r = run(url, "EXECUTE read('pair');");
    assert!(r[0].ends_with("|1|1"), "{r:?}");
    // Node 1 comes back (its own mark does not stop it), clears the mark once its standby
    // caught up, and releases; node 2 acquires above its min_token.
    assert_eq!(
        fields(&run(url, "EXECUTE acquire('pair', 1, 0, 60000);")[0]).1,
        2
    );
    assert_eq!(run(url, "EXECUTE clear('pair', 1, 2, 60000);").len(), 1);
    assert!(run(url, "EXECUTE read('pair');")[0].ends_with("||"));
    assert_eq!(run(url, "EXECUTE release('pair', 1, 2);").len(), 1);
    let r = run(url, "EXECUTE acquire('pair', 2, 10, 60000);");
    assert_eq!(fields(&r[0]).0, "2");
    assert_eq!(fields(&r[0]).1, 11);
    assert!(r[0].ends_with("|2|11"), "{r:?}");
    // Mark by a non-holder: no row. Clear by the holder.
    assert!(run(url, "EXECUTE mark('pair', 1, 11, 60000);").is_empty());
    assert_eq!(run(url, "EXECUTE clear('pair', 2, 11, 60000);").len(), 1);
    // Not yet expired: refused. Expired (on the witness's clock; moved back rather than waited
    // for): node 1 takes it with the next token, and node 2's renew fails.
    assert!(run(url, "EXECUTE acquire('pair', 1, 0, 60000);").is_empty());
    run(url, EXPIRE);
    let r = run(url, "EXECUTE acquire('pair', 1, 0, 60000);");
    assert_eq!(fields(&r[0]), ("1".to_string(), 12, fields(&r[0]).2));
    assert!(r[0].ends_with("|1|12"), "{r:?}");
    assert!(run(url, "EXECUTE renew('pair', 2, 11, 60000);").is_empty());
    let (holder, token, _) = fields(&run(url, "EXECUTE read('pair');")[0]);
    assert_eq!((holder.as_str(), token), ("1", 12));
}

#[test]
fn racing_acquires_on_a_free_row_grant_exactly_one() {
    let db = testkit::pg::fresh_database().expect("postgres");
    let url = db.url().to_string();
    run(&url, "SELECT 1 WHERE false;");
    for round in 0..5 {
        // Free the row (expire it, and clear the last winner's "running alone" mark), then 6
        // sessions acquire at once.
        run(&url, EXPIRE);
        run(
            &url,
            "UPDATE denwa_ha_lease SET alone = NULL, alone_since = NULL;",
        );
        let handles: Vec<_> = (1..=6)
            .map(|holder| {
                let url = url.clone();
                std::thread::spawn(move || {
                    run(
                        &url,
                        &format!("EXECUTE acquire('pair', {holder}, 0, 60000);"),
                    )
                })
            })
            .collect();
        let granted: Vec<Vec<String>> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(granted.len(), 1, "round {round}: {granted:?}");
        assert_eq!(
            fields(&granted[0][0]).1,
            round + 1,
            "tokens increase by one"
        );
    }
}

fn sql_row(line: &str) -> ha::witness::SqlRow {
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f.len(), 5, "{line}");
    let holder = if f[0].is_empty() {
        None
    } else {
        Some(f[0].parse().expect("holder"))
    };
    (
        holder,
        f[1].parse().expect("token"),
        f[2].parse().expect("ttl"),
        (!f[3].is_empty()).then(|| f[3].parse().expect("alone")),
        (!f[4].is_empty()).then(|| f[4].parse().expect("alone_since")),
    )
}

/// The answer without its ttl (the two clocks differ; the kinds, holders and tokens must not).
fn shape(a: &LeaseAnswer) -> (u8, Option<NodeId>, Epoch, Option<(NodeId, Epoch)>) {
    match a {
        LeaseAnswer::Granted { token, .. } => (0, None, *token, None),
        LeaseAnswer::Denied {
            holder,
            token,
            alone,
            ..
        } => (1, *holder, *token, *alone),
        LeaseAnswer::Error(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn random_requests_get_the_same_answers_from_postgres_and_the_model() {
    let db = testkit::pg::fresh_database().expect("postgres");
    let t0 = Instant::now();
    let mut vnow = t0;
    let mut row = LeaseRow::default();
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let mut held: [Epoch; 2] = [Epoch(0); 2];
    let mut script = String::new();
    let mut expected = Vec::new();
    for k in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        script.push_str(&format!("SELECT '#{k}';\n"));
        let who = (rng % 2) as usize;
        let op = match (rng >> 8) % 8 {
            0 => {
                // Time passes on the witness beyond the lease.
                script.push_str(EXPIRE);
                script.push('\n');
                vnow += Duration::from_millis(1);
                row.until = Some(vnow);
                vnow += Duration::from_millis(1);
                expected.push(None);
                continue;
            }
            1 => LeaseOp::Acquire {
                min_token: Epoch((rng >> 16) % 4 * 5),
            },
            2 if (rng >> 20).is_multiple_of(4) => LeaseOp::AcquireAfterFence {
                min_token: Epoch((rng >> 16) % 4 * 5),
            },
            2 => LeaseOp::Acquire {
                min_token: Epoch((rng >> 16) % 4 * 5),
            },
            3 => LeaseOp::Renew { token: held[who] },
            4 => LeaseOp::MarkAlone { token: held[who] },
            5 | 6 => LeaseOp::ClearAlone { token: held[who] },
            _ => LeaseOp::Release { token: held[who] },
        };
        let req = LeaseRequest {
            id: k,
            holder: NodeId(who as u32 + 1),
            op,
            duration: Duration::from_secs(60),
        };
        let want = row.apply(&req, vnow);
        if let (true, LeaseAnswer::Granted { token, .. }) = (op.acquires(), &want) {
            held[who] = *token;
        }
        expected.push(Some(want));
        let call = req.sql().expect("fits");
        let name = match op {
            LeaseOp::Acquire { .. } => "acquire",
            LeaseOp::AcquireAfterFence { .. } => "acquire_fenced",
            LeaseOp::Renew { .. } => "renew",
            LeaseOp::Release { .. } => "release",
            LeaseOp::MarkAlone { .. } => "mark",
            LeaseOp::ClearAlone { .. } => "clear",
        };
        let args = match call.duration_ms {
            Some(ms) => format!("'pair', {}, {}, {ms}", call.holder, call.token),
            None => format!("'pair', {}, {}", call.holder, call.token),
        };
        script.push_str(&format!("EXECUTE {name}({args}); EXECUTE read('pair');\n"));
    }
    let lines = run(db.url(), &script);
    // Split the output at the step markers.
    let mut steps: Vec<Vec<&str>> = Vec::new();
    for l in &lines {
        if l.starts_with('#') {
            steps.push(Vec::new());
        } else if let Some(s) = steps.last_mut() {
            s.push(l);
        }
    }
    assert_eq!(steps.len(), expected.len());
    let mut granted = 0;
    for (k, (rows, want)) in steps.iter().zip(&expected).enumerate() {
        let Some(want) = want else { continue };
        let got = match rows.as_slice() {
            [updated, _read] => answer_from_rows(Some(sql_row(updated)), None),
            [read] => answer_from_rows(None, Some(sql_row(read))),
            other => panic!("step {k}: {other:?}"),
        };
        assert_eq!(
            shape(&got),
            shape(want),
            "step {k}: postgres {got:?}, model {want:?}"
        );
        granted += usize::from(matches!(got, LeaseAnswer::Granted { .. }));
    }
    assert!(
        granted > 20,
        "the sequence must exercise grants ({granted})"
    );
}
