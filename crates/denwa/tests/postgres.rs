//! The same PBX on PostgreSQL (a private cluster started by the test): registration, a call with
//! its record, and survival of kill -9, exactly as on SQLite.

mod common;

use std::time::Duration;

use common::{Denwa, Opts, sipp_user};
use testkit::sipp::Sipp;

#[test]
fn pbx_on_postgres_registers_calls_and_survives_kill9() {
    let db = testkit::pg::fresh_database()
        .expect("PostgreSQL test cluster (apt-get install -y postgresql)");
    let mut d = Denwa::start_with(Opts {
        database_url: Some(db.url().to_string()),
        ..Default::default()
    });
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    let port = testkit::ports::free_port().expect("port");
    let mut reg = Sipp::uac("register.xml", &d.sip_addr());
    reg.local_port = Some(port);
    reg.inject_text = Some(sipp_user("1002", "secret-baac"));
    reg.run().expect("register on PostgreSQL");

    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_port = Some(port);
    uas.service = Some("1002".into());
    let mut callee = uas.spawn().expect("uas");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("uas listening");
    let mut uac = Sipp::uac("uac_call.xml", &d.sip_addr());
    uac.inject_text = Some(sipp_user("1001", "secret-baab"));
    uac.service = Some("1002".into());
    uac.run().expect("call on PostgreSQL");
    callee.finish().expect("callee");

    d.kill9();
    d.spawn();
    assert_eq!(d.registrations().len(), 1, "binding lost on PostgreSQL");
    let cdrs = d.cdrs();
    assert_eq!(cdrs.len(), 1, "call record lost on PostgreSQL");
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
    let health = d.logs();
    assert!(
        health.contains("postgres"),
        "server did not report the PostgreSQL backend"
    );
}
