//! The driver loop: feeds the engine what the sockets, timers, database and relay produce, and
//! carries out what it asks. One task owns the engine (`&mut`, no locks); database work runs on
//! spawned tasks whose answers come back through a channel, so disk latency never stalls
//! signalling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use engine::db::{DbAnswer, DbOp, OpId};
use engine::media::{MediaCommand, MediaEvent, SessionId, Side};
use engine::usrloc::LocOp;
use engine::{ConfigUpdate, Engine, Input, Now, Output, Received};
use store::{Change, Store};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::transport::{Inbound, Transports};
use crate::{Control, Shared, load};

mod quiesce;
mod trunk_role;

/// Messages taken from the inbound queue per loop turn before timers are looked at again.
const BATCH: usize = 256;

/// How often trunk host names are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(300);

pub(crate) struct Driver {
    engine: Engine,
    store: Store,
    relay: media::Relay,
    transports: Arc<Transports>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    node: String,
    resolver: crate::resolve::Resolver,
    sessions: HashMap<SessionId, media::Session>,
    /// While dropping the calls of a graceful release: their relay sessions drain until then.
    drain_relays: Option<(std::time::Instant, crate::drain::RelayDrain)>,
    /// Terminating media (voice applications).
    apps: crate::apps_media::AppMedia,
    /// Call recording of relayed calls.
    recording: crate::recording::RecService,
    app_events: Option<mpsc::Receiver<media::endpoint::EngineEvent>>,
    /// Answers of database tasks, configuration reloads, send failures and relayed in-band
    /// digits, bounded by [`BACK_QUEUE`]. Every message answers work the engine or the driver
    /// started, and that work is capped (database operations by `max_pending_db` and
    /// `max_lookups`), so the bound is not reached in normal running; when it is, the tasks
    /// holding answers wait for room (`send().await`) and a send failure is dropped (its
    /// transaction's own timer ends it instead).
    back_tx: Back,
    back_rx: Option<mpsc::Receiver<Input>>,
    /// Subscription rows, batched ([`crate::sub_writer`]).
    subs_writer: crate::sub_writer::SubWriter,
    /// Inputs produced while carrying out outputs (media answers), fed before the next turn.
    feedback: Vec<Input>,
    /// Database operations of this turn that must run in order (location changes).
    ordered: Vec<(OpId, DbOp)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Rows of calls in progress, written in order ([`crate::live_calls`]).
    live: crate::live_calls::LiveWriter,
}

/// The driver's answer queue ([`Driver::back_tx`]).
pub(crate) type Back = mpsc::Sender<Input>;

/// Room in the answer queue: above the engine's default cap on database operations in flight
/// (`max_pending_db`, 20,000), so a full group commit's answers fit at once. Slots are allocated
/// as used, not up front.
pub(crate) const BACK_QUEUE: usize = 32_768;

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    }
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: Engine,
        store: Store,
        relay: media::Relay,
        transports: Arc<Transports>,
        metrics: Arc<Metrics>,
        shared: Arc<Shared>,
        node: String,
        resolver: crate::resolve::Resolver,
        (apps, app_events): (
            crate::apps_media::AppMedia,
            mpsc::Receiver<media::endpoint::EngineEvent>,
        ),
    ) -> Driver {
        let (back_tx, back_rx) = mpsc::channel(BACK_QUEUE);
        let recording = crate::recording::RecService::start(
            store.clone(),
            apps.data_dir().to_path_buf(),
            metrics.recorder.clone(),
            back_tx.clone(),
        );
        let live = crate::live_calls::LiveWriter::start(store.clone(), back_tx.clone());
        let subs_writer = crate::sub_writer::SubWriter::start(store.clone(), back_tx.clone());
        Driver {
            subs_writer,
            live,
            engine,
            store,
            relay,
            transports,
            metrics,
            shared,
            node,
            resolver,
            sessions: HashMap::new(),
            drain_relays: None,
            recording,
            apps,
            app_events: Some(app_events),
            back_tx,
            back_rx: Some(back_rx),
            feedback: Vec::new(),
            ordered: Vec::new(),
            shutdown: None,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let Some(mut back) = self.back_rx.take() else {
            return;
        };
        let Some(mut app_events) = self.app_events.take() else {
            return;
        };
        let mut changes = self.store.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        // Trunk host names are resolved again now and then (a provider moves its SBC).
        let mut resolve = tokio::time::interval(RESOLVE_EVERY);
        resolve.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resolve.tick().await;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish();
        loop {
            let deadline = self
                .engine
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                Some(c) = control.recv() => self.on_control(c),
                Some(ev) = app_events.recv() => {
                    let n = now();
                    if let Some(e) = crate::apps_media::AppMedia::event(ev, self.apps.data_dir())
                        && !self.recording.media_event(&e)
                    {
                        self.engine.handle_input(Input::Media(e), n);
                    }
                    for _ in 0..BATCH {
                        match app_events.try_recv() {
                            Ok(ev) => {
                                if let Some(e) = crate::apps_media::AppMedia::event(ev, self.apps.data_dir())
                                    && !self.recording.media_event(&e)
                                {
                                    self.engine.handle_input(Input::Media(e), n);
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(i) = back.recv() => {
                    let n = now();
                    self.engine.handle_input(i, n);
                    for _ in 0..BATCH {
                        match back.try_recv() {
                            Ok(i) => self.engine.handle_input(i, n),
                            Err(_) => break,
                        }
                    }
                }
                Some(m) = inbound.recv() => {
                    let n = now();
                    self.receive(m, n);
                    // Drain what is already queued before looking at timers again.
                    for _ in 0..BATCH {
                        match inbound.try_recv() {
                            Ok(m) => self.receive(m, n),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep_until(deadline) => self.engine.handle_input(Input::Timeout, now()),
                _ = tick.tick() => {
                    self.check_media(now());
                    self.publish();
                }
                _ = resolve.tick() => self.on_change(Change::Outside),
                c = changes.recv() => {
                    match c {
                        Ok(c) => self.on_change(c),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.on_change(Change::All),
                        Err(_) => {}
                    }
                }
            }
            self.follow_trunk_role();
            self.follow_new_calls();
            self.carry_out();
            self.live.ringing_check(&self.engine);
            self.shared.beat();
            if let Some(done) = self.shutdown.take() {
                self.engine.end_all_calls(now());
                self.carry_out();
                // Give final messages and record writes a moment to leave.
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_millis(100), back.recv()).await {
                        Ok(Some(i)) => {
                            self.engine.handle_input(i, now());
                            self.carry_out();
                        }
                        _ => break,
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn receive(&mut self, m: Inbound, n: Now) {
        let r = Received {
            message: m.message,
            source: m.source,
            local: m.local,
            transport: m.transport,
        };
        self.engine.handle_input(Input::Receive(r), n);
    }

    fn on_control(&mut self, c: Control) {
        let n = now();
        match c {
            Control::ListCalls(tx) => {
                let _ = tx.send(self.engine.calls(n));
            }
            Control::Hangup(id, tx) => {
                let _ = tx.send(self.engine.hangup(id, n));
            }
            Control::Transfer(id, to, tx) => {
                let _ = tx.send(self.engine.transfer(id, &to, n));
            }
            Control::TransferMoving(id, to, moves, tx) => {
                let _ = tx.send(self.engine.transfer_moving(id, &to, Some(moves), n));
            }
            Control::Subscriptions(tenant, tx) => {
                let _ = tx.send(self.engine.subscriptions(tenant, n));
            }
            Control::Conferences(tx) => {
                let _ = tx.send(self.engine.conferences(n));
            }
            Control::ParkedCalls(tenant, tx) => {
                let _ = tx.send(self.engine.parked_calls(tenant));
            }
            Control::ConfMute(call, muted, tx) => {
                let _ = tx.send(self.engine.conf_set_mute(call, muted, n));
            }
            Control::Shutdown(tx) => self.shutdown = Some(tx),
            Control::LoadBindings(bindings, tx) => {
                let count = bindings.len();
                for b in bindings {
                    self.engine.load_binding(b, n);
                }
                let _ = tx.send(count);
            }
            Control::LoadParked(parked, tx) => {
                let count = parked.len();
                self.engine.load_parked(parked);
                let _ = tx.send(count);
            }
            Control::ForgetParked(tx) => {
                let _ = tx.send(self.engine.forget_parked());
            }
            Control::LoadLiveCalls(rows, event, tx) => {
                let count = self.engine.load_live_calls(rows, event, n);
                // The relay sockets are bound before the answer lets the address come up.
                self.carry_out();
                let _ = tx.send(count);
            }
            Control::ForgetLiveCalls(tx) => {
                let count = self.engine.forget_live_calls(n);
                self.carry_out();
                let _ = tx.send(count);
            }
            Control::DrainLiveCalls(until, relays, tx) => {
                self.drain_relays = Some((until, relays));
                let count = self.engine.forget_live_calls(n);
                self.carry_out();
                self.drain_relays = None;
                let _ = tx.send(count);
            }
            Control::EndRingingCalls(event, tx) => {
                let count = self.engine.end_ringing_calls(event, n);
                self.carry_out();
                // Answered once their records are written (after a turn, below).
                self.live.await_ringing(count, tx);
            }
        }
    }

    /// Copies the engine's counters and gauges to `/metrics`.
    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.publish_engine(self.engine.counters());
        let trunks = self.engine.trunk_statuses(now());
        match self.metrics.trunks.lock() {
            Ok(mut l) => *l = trunks,
            Err(p) => *p.into_inner() = trunks,
        }
        self.metrics
            .registrations
            .store(self.engine.usrloc().len() as i64, Relaxed);
        self.metrics
            .active_calls
            .store(self.engine.active_calls() as i64, Relaxed);
        self.metrics
            .transactions
            .store(self.engine.transactions() as i64, Relaxed);
    }

    /// Carries out every output, feeding media answers back, until the engine is quiet.
    fn carry_out(&mut self) {
        loop {
            while let Some(o) = self.engine.poll_output() {
                match o {
                    Output::Transmit(t) => self.transmit(t),
                    Output::Db(id, op) => self.database(id, op),
                    Output::Media(cmd) => self.media(cmd),
                }
            }
            self.flush_ordered();
            if self.feedback.is_empty() {
                return;
            }
            let n = now();
            for i in std::mem::take(&mut self.feedback) {
                self.engine.handle_input(i, n);
            }
        }
    }

    fn transmit(&mut self, t: sip::transaction::Transmit) {
        let back = self.back_tx.clone();
        let txn = t.transaction;
        let ok = self
            .transports
            .send(t.transport, t.local, t.destination, t.data, move || {
                if let Some(id) = txn
                    && back.try_send(Input::SendFailed(id)).is_err()
                {
                    debug!("answer queue full: a send failure is left to its transaction's timer");
                }
            });
        if !ok && let Some(id) = txn {
            self.feedback.push(Input::SendFailed(id));
        }
    }

    /// A subscription row change, to the batching writer; answered at once with an error when
    /// its queue is full (the engine logs it; the subscription itself goes on in memory).
    fn sub_write(&mut self, id: OpId, w: store::EventSubWrite) {
        if self.subs_writer.submit(id, w).is_err() {
            self.feedback.push(Input::Db(
                id,
                DbAnswer::Vm(engine::vm::VmAnswer::Done(Err(
                    "subscription writer queue full".into(),
                ))),
            ));
        }
    }

    fn database(&mut self, id: OpId, op: DbOp) {
        match op {
            op @ (DbOp::Location(_) | DbOp::BindingFlags { .. }) => self.ordered.push((id, op)),
            DbOp::LookupExtension { tenant, number } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = load::extension(&store, tenant, &number)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Extension(r))).await;
                });
            }
            DbOp::InsertCdr(cdr) => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .insert_cdr(load::cdr_row(*cdr))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Cdr(r))).await;
                });
            }
            DbOp::CdrEvents {
                tenant,
                call_id,
                events,
            } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let rows = load::cdr_events(events);
                    let r = store
                        .insert_cdr_events(tenant, &call_id, &rows)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::TrunkStatus { trunk_id, status } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                let node = self.node.clone();
                tokio::spawn(async move {
                    let r = store
                        .set_trunk_status(trunk_id, &node, &status)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::GroupPosition { group_id, member } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .set_group_position(group_id, &member)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::Vm(engine::vm::VmOp::SaveSub(r)) => {
                self.sub_write(id, store::EventSubWrite::Put(r));
            }
            DbOp::Vm(engine::vm::VmOp::DropSub { call_id, local_tag }) => {
                self.sub_write(id, store::EventSubWrite::Drop { call_id, local_tag });
            }
            DbOp::Vm(op) => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                let data_dir = self.apps.data_dir().to_path_buf();
                tokio::spawn(async move {
                    let a = crate::vm_io::run(&store, &data_dir, op).await;
                    let _ = back.send(Input::Db(id, DbAnswer::Vm(a))).await;
                });
            }
            DbOp::Forward {
                tenant,
                number,
                kind,
                target,
            } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .set_forward(tenant, &number, kind, target.as_deref())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::Dnd { tenant, number, on } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .set_dnd(tenant, &number, Some(on))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::TimecondMode { tenant, name, mode } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .set_timecond_mode(tenant, &name, mode)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
            DbOp::Park(op) => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = match &op {
                        engine::park::ParkOp::Save(rec) => store.park_save(rec).await,
                        engine::park::ParkOp::Free { tenant, slot } => {
                            store.park_free(*tenant, *slot).await
                        }
                    };
                    let _ = back
                        .send(Input::Db(id, DbAnswer::Done(r.map_err(|e| e.to_string()))))
                        .await;
                });
            }
            DbOp::LiveCall(op) => {
                if !self.live.write(id, op) {
                    warn!("call rows queue full: a row was not written");
                    let e = "too many call rows waiting to be written".to_string();
                    self.feedback.push(Input::Db(id, DbAnswer::Done(Err(e))));
                }
            }
            DbOp::PurgeExpired { now } => {
                let store = self.store.clone();
                let back = self.back_tx.clone();
                tokio::spawn(async move {
                    let r = store
                        .purge_expired_bindings(now.into())
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string());
                    let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                });
            }
        }
    }

    /// Runs this turn's location changes on one task, in order; runs of REGISTERs that only
    /// upsert go to the store together (one group commit answers them all).
    fn flush_ordered(&mut self) {
        if self.ordered.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.ordered);
        let store = self.store.clone();
        let back = self.back_tx.clone();
        let node = self.node.clone();
        tokio::spawn(async move {
            let mut run: Vec<(OpId, Vec<LocOp>)> = Vec::new();
            for (id, op) in batch {
                match op {
                    DbOp::Location(ops) if ops.iter().all(|o| matches!(o, LocOp::Upsert(_))) => {
                        run.push((id, ops));
                    }
                    DbOp::Location(ops) => {
                        upsert_run(&store, &node, std::mem::take(&mut run), &back).await;
                        let result = apply(&store, &node, &ops).await;
                        let _ = back
                            .send(Input::Db(id, DbAnswer::Location { ops, result }))
                            .await;
                    }
                    DbOp::BindingFlags { binding, flags } => {
                        upsert_run(&store, &node, std::mem::take(&mut run), &back).await;
                        let mut row = load::binding_row(&binding, &node, SystemTime::now());
                        row.flags = flags;
                        let r = store
                            .upsert_binding(row)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string());
                        let _ = back.send(Input::Db(id, DbAnswer::Done(r))).await;
                    }
                    _ => {}
                }
            }
            upsert_run(&store, &node, run, &back).await;
        });
    }

    fn media(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Allocate {
                session,
                call_id,
                a_ip,
                b_ip,
            } => {
                let r = self.relay.allocate(&call_id, a_ip, b_ip);
                self.allocated(session, r);
            }
            MediaCommand::Adopt {
                session,
                call_id,
                a,
                b,
            } => {
                let r = self.relay.allocate_at(&call_id, a, b);
                self.allocated(session, r);
            }
            MediaCommand::SetRemote {
                session,
                side,
                rtp,
                rtcp,
            } => {
                if let Some(s) = self.sessions.get(&session) {
                    s.set_remote(leg(side), rtp, rtcp);
                }
            }
            MediaCommand::MuteSide {
                session,
                side,
                muted,
            } => {
                if let Some(s) = self.sessions.get(&session) {
                    s.set_mute(leg(side), muted);
                }
            }
            MediaCommand::SetHold { session, on_hold } => {
                if let Some(s) = self.sessions.get(&session) {
                    s.set_hold(on_hold);
                }
            }
            MediaCommand::SetClockRate {
                session,
                side,
                payload_type,
                hz,
            } => {
                if let Some(s) = self.sessions.get(&session) {
                    s.set_clock_rate(leg(side), payload_type, hz);
                }
            }
            MediaCommand::WatchInband { session } => self.recording.watch_inband(session),
            cmd @ (MediaCommand::RecordCall { .. } | MediaCommand::StopRecordCall { .. }) => {
                if let Some((session, spec)) = self.recording.relay_beep(&cmd)
                    && let Some(s) = self.sessions.get(&session)
                {
                    s.beep(spec);
                }
                for c in self.recording.command(cmd) {
                    if let Some(ev) = self.apps.command(c)
                        && !self.recording.media_event(&ev)
                    {
                        self.feedback.push(Input::Media(ev));
                    }
                }
            }
            MediaCommand::Answered { session, info } => {
                if let Some(s) = self.sessions.get(&session) {
                    self.recording.answered(s, session, info);
                }
            }
            MediaCommand::Close { session } => {
                self.recording.closed(session);
                // Always answered: a call record waits for it.
                let (a, b) = match self.sessions.remove(&session) {
                    Some(s) => {
                        let st = s.stats();
                        let stats = (
                            load::leg_stats(st.leg(media::Leg::A)),
                            load::leg_stats(st.leg(media::Leg::B)),
                        );
                        match &self.drain_relays {
                            Some((until, relays)) => relays.hold(s, *until),
                            None => {
                                tokio::spawn(s.close());
                            }
                        }
                        stats
                    }
                    None => Default::default(),
                };
                self.feedback
                    .push(Input::Media(MediaEvent::Closed { session, a, b }));
            }
            other => {
                if let Some(ev) = self.apps.command(other) {
                    self.feedback.push(Input::Media(ev));
                }
            }
        }
    }

    /// Keeps a session the relay opened and tells the engine where it listens (or why not).
    fn allocated(&mut self, session: SessionId, r: Result<media::Session, media::relay::Error>) {
        let ev = match r {
            Ok(s) => {
                let (a, b) = (s.local(media::Leg::A), s.local(media::Leg::B));
                self.sessions.insert(session, s);
                MediaEvent::Allocated { session, a, b }
            }
            Err(e) => MediaEvent::AllocationFailed {
                session,
                reason: e.to_string(),
            },
        };
        self.feedback.push(Input::Media(ev));
    }

    /// Reports sessions whose media stopped.
    fn check_media(&mut self, n: Now) {
        let dead: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_timed_out())
            .map(|(id, _)| *id)
            .collect();
        for session in dead {
            self.engine
                .handle_input(Input::Media(MediaEvent::Timeout { session }), n);
        }
    }

    fn on_change(&self, c: Change) {
        let (ext, ten, set, out) = match c {
            Change::Extensions => (true, false, false, false),
            Change::Tenants => (false, true, false, false),
            Change::Settings => (false, false, true, false),
            Change::Outside => (false, false, false, true),
            Change::All => (true, true, true, true),
            _ => (false, false, false, false),
        };
        let apps = matches!(c, Change::Apps | Change::All);
        let back = self.back_tx.clone();
        let store = self.store.clone();
        let resolver = self.resolver.clone();
        if matches!(c, Change::Codes | Change::All | Change::Extensions) {
            let (back, store) = (back.clone(), store.clone());
            tokio::spawn(async move {
                match crate::codes_load::load(&store).await {
                    Ok(c) => {
                        let _ = back.send(Input::Config(ConfigUpdate::Codes(c))).await;
                    }
                    Err(e) => warn!(error = %e, "loading feature codes and time conditions failed"),
                }
            });
        }
        if apps {
            let (back, store) = (back.clone(), store.clone());
            tokio::spawn(async move {
                match load::apps(&store).await {
                    Ok(a) => {
                        let _ = back.send(Input::Config(ConfigUpdate::Apps(a))).await;
                    }
                    Err(e) => warn!(error = %e, "loading IVR menus failed"),
                }
            });
        }
        if !(ext || ten || set || out) {
            return;
        }
        tokio::spawn(async move {
            // Tenants before extensions: an extension's tenant must be known when it is used.
            if ten {
                match load::tenants(&store).await {
                    Ok(t) => {
                        let _ = back.send(Input::Config(ConfigUpdate::Tenants(t))).await;
                    }
                    Err(e) => warn!(error = %e, "loading tenants failed"),
                }
            }
            if ext {
                match load::extensions(&store).await {
                    Ok(e) => {
                        let _ = back.send(Input::Config(ConfigUpdate::Extensions(e))).await;
                    }
                    Err(e) => warn!(error = %e, "loading extensions failed"),
                }
            }
            if set {
                let s = load::settings(&store).await;
                let _ = back.send(Input::Config(ConfigUpdate::Settings(s))).await;
            }
            if out {
                match load::outside(&store, &resolver).await {
                    Ok(o) => {
                        let _ = back.send(Input::Config(ConfigUpdate::Outside(o))).await;
                    }
                    Err(e) => warn!(error = %e, "loading trunks and routes failed"),
                }
            }
        });
    }
}

fn leg(side: Side) -> media::Leg {
    match side {
        Side::A => media::Leg::A,
        Side::B => media::Leg::B,
    }
}

/// Writes the bindings of REGISTERs that only upsert and answers each one.
async fn upsert_run(store: &Store, node: &str, run: Vec<(OpId, Vec<LocOp>)>, back: &Back) {
    if run.is_empty() {
        return;
    }
    let wall = SystemTime::now();
    // One REGISTER's rows commit together (`store::location_tx`).
    let regs = run
        .iter()
        .map(|(_, ops)| {
            ops.iter()
                .filter_map(|op| match op {
                    LocOp::Upsert(b) => Some(load::binding_row(b, node, wall)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let results = store.upsert_registrations(regs).await;
    for ((id, ops), r) in run.into_iter().zip(results) {
        let result = r.map_err(|e| e.to_string());
        let _ = back
            .send(Input::Db(id, DbAnswer::Location { ops, result }))
            .await;
    }
}

/// Applies one REGISTER's (or keep-alive verdict's) changes in order, in one transaction
/// (`store::location_tx`): all of them or none.
async fn apply(store: &Store, node: &str, ops: &[LocOp]) -> Result<(), String> {
    let wall = SystemTime::now();
    let writes: Vec<store::LocationWrite> = ops
        .iter()
        .map(|op| match op {
            LocOp::Upsert(b) => {
                store::LocationWrite::Upsert(Box::new(load::binding_row(b, node, wall)))
            }
            LocOp::Delete {
                extension_id,
                contact_uri,
            } => store::LocationWrite::Delete {
                extension_id: *extension_id,
                contact_uri: contact_uri.clone(),
            },
            LocOp::DeleteAll { extension_id } => store::LocationWrite::DeleteAll {
                extension_id: *extension_id,
            },
        })
        .collect();
    store.write_location(&writes).await.map_err(|e| {
        debug!(error = %e, "location write failed");
        e.to_string()
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
