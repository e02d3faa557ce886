//! One REGISTER, one database operation: a REGISTER that removes one contact and adds two
//! hands the driver a single `DbOp::Location` with every change in order (the driver writes it
//! in one transaction, `store::location_tx`); when that write fails nothing of it reaches
//! memory, and when it succeeds all of it does.

mod common;

use common::*;
use engine::db::DbOp;
use engine::usrloc::LocOp;

const PHONE: &str = "192.0.2.21:5060";

#[test]
fn a_register_changing_several_contacts_is_one_database_operation() {
    let mut h = Harness::new();
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    let several = "<sip:1001@192.0.2.21:5060>;expires=0, <sip:1001@192.0.2.22:5060>, <sip:1001@192.0.2.23:5060>";
    for (mode, after) in [
        (DbMode::Fail, vec!["sip:1001@192.0.2.21:5060"]),
        (
            DbMode::Ok,
            vec!["sip:1001@192.0.2.22:5060", "sip:1001@192.0.2.23:5060"],
        ),
    ] {
        h.db_mode = DbMode::Hold;
        h.held.clear();
        h.register("1001", Some(several), Some(300), PHONE, SEG1);
        assert_eq!(h.held.len(), 1, "one REGISTER, one database operation");
        let DbOp::Location(ops) = &h.held[0].1 else {
            panic!("not a location write: {:?}", h.held[0].1);
        };
        let shape: Vec<String> = ops
            .iter()
            .map(|op| match op {
                LocOp::Upsert(b) => format!("+{}", b.contact_uri),
                LocOp::Delete { contact_uri, .. } => format!("-{contact_uri}"),
                LocOp::DeleteAll { .. } => "-*".to_string(),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "-sip:1001@192.0.2.21:5060",
                "+sip:1001@192.0.2.22:5060",
                "+sip:1001@192.0.2.23:5060"
            ]
        );
        h.release_db(mode);
        let mut memory = h.memory(1);
        memory.sort();
        assert_eq!(memory, after);
        assert_eq!(h.stored(1).len(), after.len());
    }
}
