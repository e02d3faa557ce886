//! `acc`: call records. Every call that reached call control ends in exactly one record, written
//! before the call's last response is sent (so a record is never lost to a crash after the phone
//! was told the call ended). Media statistics come from the relay when the bridge closes.

use std::collections::HashMap;
use std::time::SystemTime;

use sip::Response;
use sip::transaction::TransactionId;

use crate::b2bua::{A_LEG, Call, Ending};
use crate::db::{CdrRecord, DbOp, Disposition, HangupBy, LegStats};
use crate::media::SessionId;
use crate::{Engine, Now, Pending};

/// A response that waits for a record to be durable.
pub(crate) type Reply = Option<(TransactionId, Response)>;

/// Records waiting for their media statistics.
#[derive(Default)]
pub(crate) struct Acc {
    awaiting: HashMap<SessionId, (Box<CdrRecord>, Reply)>,
}

fn secs_between(from: SystemTime, to: SystemTime) -> i64 {
    to.duration_since(from)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// The record of a call refused before it rang anywhere.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refusal_record(
        &mut self,
        tenant: i64,
        call_id: &str,
        caller: &str,
        caller_name: &str,
        callee: &str,
        status: u16,
        reason: &str,
        disposition: Disposition,
        now: Now,
    ) -> CdrRecord {
        self.counters.call(disposition);
        CdrRecord {
            tenant_id: tenant,
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            callee: callee.to_string(),
            caller_name: caller_name.to_string(),
            start_time: now.wall,
            answer_time: None,
            end_time: now.wall,
            duration_s: 0,
            billsec: 0,
            disposition,
            hangup_by: HangupBy::System,
            hangup_cause: format!("{status} {reason}"),
            codec: String::new(),
            a: LegStats::default(),
            b: LegStats::default(),
            route: Default::default(),
        }
    }

    /// The record of a call that ends now.
    pub(crate) fn call_record(&self, call: &Call, ending: Ending, now: Now) -> CdrRecord {
        CdrRecord {
            tenant_id: call.tenant_id,
            call_id: call.legs[A_LEG].call_id.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            caller_name: call.caller_name.clone(),
            start_time: call.start,
            answer_time: call.answer,
            end_time: now.wall,
            duration_s: secs_between(call.start, now.wall),
            billsec: call.answer.map(|a| secs_between(a, now.wall)).unwrap_or(0),
            disposition: ending.disposition,
            hangup_by: ending.hangup_by,
            hangup_cause: ending.cause,
            codec: call.codec.clone(),
            a: LegStats::default(),
            b: LegStats::default(),
            route: call.route.clone(),
        }
    }

    /// Writes a record; `reply` is sent once it is durable.
    pub(crate) fn write_cdr(&mut self, cdr: CdrRecord, reply: Reply) {
        self.db(DbOp::InsertCdr(Box::new(cdr)), Pending::Cdr(reply));
    }

    /// Holds a record until the relay reports `session`'s statistics.
    pub(crate) fn await_media_stats(&mut self, session: SessionId, cdr: CdrRecord, reply: Reply) {
        self.acc.awaiting.insert(session, (Box::new(cdr), reply));
    }

    /// A relay session closed: complete the record waiting for it.
    pub(crate) fn media_closed(&mut self, session: SessionId, a: LegStats, b: LegStats, _now: Now) {
        self.b2bua.forget_session(session);
        if let Some((mut cdr, reply)) = self.acc.awaiting.remove(&session) {
            cdr.a = a;
            cdr.b = b;
            self.db(DbOp::InsertCdr(cdr), Pending::Cdr(reply));
        }
    }
}
