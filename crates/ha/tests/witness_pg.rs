//! The witness SQL against a real PostgreSQL (a private cluster from `testkit`), driven through
//! `psql`: the statements behave as [`ha::witness::LeaseRow`] models them, and racing acquires
//! on a free row grant exactly one.

use std::process::{Command, Stdio};

/// Moves the lease's end into the past, as time passing on the witness would.
const EXPIRE: &str =
    "UPDATE denwa_ha_lease SET until = clock_timestamp() - interval '1 millisecond';";
use ha::witness::{SQL_ACQUIRE, SQL_CREATE, SQL_INIT, SQL_READ, SQL_RELEASE, SQL_RENEW};

/// Prepare every statement and run `exec` (EXECUTE lines) in one psql session; rows as
/// `holder|token|ttl_ms` lines.
fn run(url: &str, exec: &str) -> Vec<String> {
    let script = format!(
        "{SQL_CREATE};\n\
         PREPARE init(text) AS {SQL_INIT};\n\
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
    assert_eq!(f.len(), 3, "{row}");
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
    // Release by the holder frees it; node 2 acquires above its min_token.
    assert_eq!(run(url, "EXECUTE release('pair', 1, 1);").len(), 1);
    let r = run(url, "EXECUTE acquire('pair', 2, 10, 60000);");
    assert_eq!(fields(&r[0]).0, "2");
    assert_eq!(fields(&r[0]).1, 11);
    // Not yet expired: refused. Expired (on the witness's clock; moved back rather than waited
    // for): node 1 takes it with the next token, and node 2's renew fails.
    assert!(run(url, "EXECUTE acquire('pair', 1, 0, 60000);").is_empty());
    run(url, EXPIRE);
    let r = run(url, "EXECUTE acquire('pair', 1, 0, 60000);");
    assert_eq!(fields(&r[0]), ("1".to_string(), 12, fields(&r[0]).2));
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
        // Free the row (expire it), then 6 sessions acquire at once.
        run(&url, EXPIRE);
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
