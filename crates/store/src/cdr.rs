//! Call detail records (Kamailio's `acc`).

use chrono::{NaiveDate, TimeZone, Utc};

use crate::db::{RowGet, read_pool, to_ms};
use crate::group::Job;
use crate::{Cdr, CdrQuery, CdrRoute, Disposition, LegStats, NewCdr, Result, Store};

const CDR_COLS: &str = "id, tenant_id, call_id, caller, callee, caller_name, start_time,
    answer_time, end_time, duration_s, billsec, disposition, hangup_by, hangup_cause, codec,
    a_pkts_rx, a_pkts_tx, a_lost, a_jitter_ms, b_pkts_rx, b_pkts_tx, b_lost, b_jitter_ms,
    direction, trunk, did, dialled, sent_number, caller_id";

fn cdr_from(r: &impl RowGet) -> Result<Cdr> {
    Ok(Cdr {
        id: r.i64("id")?,
        record: NewCdr {
            tenant_id: r.i64("tenant_id")?,
            call_id: r.text("call_id")?,
            caller: r.text("caller")?,
            callee: r.text("callee")?,
            caller_name: r.text("caller_name")?,
            start_time: r.ts("start_time")?,
            answer_time: r.opt_ts("answer_time")?,
            end_time: r.ts("end_time")?,
            duration_s: r.i64("duration_s")?,
            billsec: r.i64("billsec")?,
            disposition: r.text("disposition")?.parse()?,
            hangup_by: r.text("hangup_by")?.parse()?,
            hangup_cause: r.text("hangup_cause")?,
            codec: r.text("codec")?,
            a: LegStats {
                pkts_rx: r.i64("a_pkts_rx")?,
                pkts_tx: r.i64("a_pkts_tx")?,
                lost: r.i64("a_lost")?,
                jitter_ms: r.f64("a_jitter_ms")?,
            },
            b: LegStats {
                pkts_rx: r.i64("b_pkts_rx")?,
                pkts_tx: r.i64("b_pkts_tx")?,
                lost: r.i64("b_lost")?,
                jitter_ms: r.f64("b_jitter_ms")?,
            },
            route: CdrRoute {
                direction: r.text("direction")?.parse()?,
                trunk: r.text("trunk")?,
                did: r.text("did")?,
                dialled: r.text("dialled")?,
                sent_number: r.text("sent_number")?,
                caller_id: r.text("caller_id")?,
            },
        },
    })
}

/// The WHERE clause of a query and its parameters in order (all integers or texts).
enum Param {
    Int(i64),
    Text(String),
}

fn where_clause(q: &CdrQuery) -> (String, Vec<Param>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    let next = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        params.len()
    };
    if let Some(t) = q.tenant_id {
        let n = next(Param::Int(t), &mut params);
        conds.push(format!("tenant_id = ${n}"));
    }
    if let Some(f) = q.from {
        let n = next(Param::Int(to_ms(f)), &mut params);
        conds.push(format!("start_time >= ${n}"));
    }
    if let Some(t) = q.to {
        let n = next(Param::Int(to_ms(t)), &mut params);
        conds.push(format!("start_time < ${n}"));
    }
    if let Some(num) = &q.number {
        let n = next(Param::Text(num.clone()), &mut params);
        conds.push(format!("(caller = ${n} OR callee = ${n})"));
    }
    if let Some(d) = q.disposition {
        let n = next(Param::Text(d.as_str().to_string()), &mut params);
        conds.push(format!("disposition = ${n}"));
    }
    if let Some(d) = q.direction {
        let n = next(Param::Text(d.as_str().to_string()), &mut params);
        conds.push(format!("direction = ${n}"));
    }
    if let Some(t) = &q.trunk {
        let n = next(Param::Text(t.clone()), &mut params);
        conds.push(format!("trunk = ${n}"));
    }
    if let Some(d) = &q.did {
        let n = next(Param::Text(d.clone()), &mut params);
        conds.push(format!("did = ${n}"));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (clause, params)
}

macro_rules! bind_params {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Int(i) => q.bind(*i),
                Param::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

impl Store {
    /// Stores a call record; returns its id once it is durable. Group-committed.
    pub async fn insert_cdr(&self, cdr: NewCdr) -> Result<i64> {
        self.submit(|tx| Job::Cdr(Box::new(cdr), tx)).await
    }

    /// Call records matching `q`, newest first.
    pub async fn list_cdrs(&self, q: &CdrQuery) -> Result<Vec<Cdr>> {
        let (clause, params) = where_clause(q);
        let (limit, offset) = q.page.clamped();
        let n = params.len();
        let sql = format!(
            "SELECT {CDR_COLS} FROM cdrs {clause} ORDER BY start_time DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        read_pool!(self.db(), pool, kind => {
            bind_params!(sqlx::query(&sql), &params)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?
                .iter()
                .map(cdr_from)
                .collect()
        })
    }

    /// Outbound calls that started at or after `since` (at most `limit`, newest first): what
    /// the toll-fraud guards count again after a restart. (tenant, caller, start, dialled,
    /// billsec).
    pub async fn outbound_calls_since(
        &self,
        since: chrono::DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, String, chrono::DateTime<Utc>, String, i64)>> {
        read_pool!(self.db(), pool, kind => {
            sqlx::query(
                "SELECT tenant_id, caller, start_time, dialled, billsec FROM cdrs
                 WHERE direction = 'outbound' AND start_time >= $1
                 ORDER BY start_time DESC LIMIT $2",
            )
            .bind(to_ms(since))
            .bind(limit.max(1))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.i64("tenant_id")?,
                    r.text("caller")?,
                    r.ts("start_time")?,
                    r.text("dialled")?,
                    r.i64("billsec")?,
                ))
            })
            .collect()
        })
    }

    /// How many records match `q` (paging ignored).
    pub async fn count_cdrs(&self, q: &CdrQuery) -> Result<i64> {
        let (clause, params) = where_clause(q);
        let sql = format!("SELECT COUNT(*) AS n FROM cdrs {clause}");
        read_pool!(self.db(), pool, kind => {
            bind_params!(sqlx::query(&sql), &params).fetch_one(pool).await?.i64("n")
        })
    }

    /// Calls per disposition that started on `day` (UTC); every disposition appears, zeros too.
    pub async fn cdr_counts_for_day(
        &self,
        tenant_id: Option<i64>,
        day: NaiveDate,
    ) -> Result<Vec<(Disposition, i64)>> {
        let start = Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
        let q = CdrQuery {
            tenant_id,
            from: Some(start),
            to: Some(start + chrono::Duration::days(1)),
            ..CdrQuery::default()
        };
        let (clause, params) = where_clause(&q);
        let sql =
            format!("SELECT disposition, COUNT(*) AS n FROM cdrs {clause} GROUP BY disposition");
        let rows: Vec<(String, i64)> = read_pool!(self.db(), pool, kind => {
            bind_params!(sqlx::query(&sql), &params)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.text("disposition")?, r.i64("n")?)))
                .collect::<Result<_>>()?
        });
        Ok(Disposition::ALL
            .iter()
            .map(|d| {
                let n = rows
                    .iter()
                    .find(|(s, _)| s == d.as_str())
                    .map_or(0, |(_, n)| *n);
                (*d, n)
            })
            .collect())
    }
}
