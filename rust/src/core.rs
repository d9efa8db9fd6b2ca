//! The batch pipeline: split → validate → tokenize (parallel, pure) then the
//! per-partition stream checks (future, duplicate, late) and windowing
//! (sequential, in message order). See docs/semantics.md.

use std::borrow::Cow;

use hashbrown::HashMap;
use rayon::prelude::*;

use crate::dedupe::Dedupe;
use crate::error::{CoreError, Reason};
use crate::event::{check_bounds, parse_event, single_object, split_message, Element, Event};
use crate::fingerprint::{Fingerprint, FingerprintKey};
use crate::guard::{cap_elements, inject_poison, isolate, push_rejection, Limits};
use crate::otlp;
use crate::tokenize::EncodingMap;
use crate::waste::{Request, UserWaste, WasteConfig};
use crate::window::{Contribution, HourlyCell, Touched, WasteCell, Week, WeeklyCell, Windows};

/// Most model names whose price is cached (model names come from the input:
/// past this the cache starts over, so arbitrary names cannot grow it).
const PRICE_CACHE_MAX: usize = 4096;

/// Batches with at least this many messages are parsed on rayon's pool.
const PARALLEL_MIN_MESSAGES: usize = 512;

/// USD per 1M tokens: (input, cached input, output).
pub type Price = (f64, f64, f64);

#[derive(Debug, Clone)]
pub struct Config {
    pub grace_ms: i64,
    pub dedupe_horizon_ms: i64,
    pub future_tolerance_ms: i64,
    pub max_message_bytes: usize,
    pub prices: Vec<(String, Price)>,
    pub encodings: EncodingMap,
    pub waste: WasteConfig,
    /// Keys the fingerprints of text events; a gateway's must be the same.
    pub fingerprint_key: FingerprintKey,
    pub limits: Limits,
    /// Testing only (`TOKENLORD_FAULT_POISON`): the core fails on a message
    /// containing these bytes (empty: off). See [`crate::guard::inject_poison`].
    pub fault_poison: Vec<u8>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace_ms: 3_600_000,
            dedupe_horizon_ms: 86_400_000,
            future_tolerance_ms: 600_000,
            max_message_bytes: 1 << 20,
            prices: Vec::new(),
            encodings: EncodingMap::default(),
            waste: WasteConfig::default(),
            fingerprint_key: FingerprintKey::default(),
            limits: Limits::default(),
            fault_poison: Vec::new(),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.grace_ms < 0 || self.dedupe_horizon_ms < 0 || self.future_tolerance_ms < 0 {
            return Err(CoreError::Config(
                "grace, dedupe horizon and future tolerance must be >= 0".into(),
            ));
        }
        self.waste.validate()?;
        self.limits.validate()?;
        for (model, (a, b, c)) in &self.prices {
            if ![a, b, c].iter().all(|p| p.is_finite() && **p >= 0.0) {
                return Err(CoreError::Config(format!(
                    "price of {model:?} must be finite and >= 0"
                )));
            }
        }
        Ok(())
    }

    /// How far behind the watermark waste memory reaches: the longest waste
    /// window, or the dedupe horizon if longer, so an event that arrives
    /// behind its partition's watermark (other users ran ahead) is still
    /// judged against everything its user did around it.
    pub fn waste_memory_ms(&self) -> i64 {
        self.waste.memory_ms().max(self.dedupe_horizon_ms)
    }

    fn price(&self, model: &str) -> Price {
        self.prices
            .iter()
            .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or((0.0, 0.0, 0.0), |(_, p)| *p)
    }
}

/// One Kafka message handed to the core.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    pub value: &'a [u8],
}

/// An accepted event, as written to the `events` table (no text).
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    pub event: Event<'a>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub tokens_estimated: bool,
    pub cost_usd: f64,
    pub wasted_tokens: u64,
    pub waste_reason: &'static str,
    pub fingerprint: Fingerprint,
    pub partition: i32,
    pub offset: i64,
}

impl EventRow<'_> {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    pub partition: i32,
    pub offset: i64,
    pub idx: u32,
    pub reason: Reason,
    pub raw: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct HourlyRow {
    pub partition: i32,
    pub hour: i64,
    pub user: String,
    pub model: String,
    pub cell: HourlyCell,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyRow {
    pub partition: i32,
    pub week_start: i64,
    pub user: String,
    pub cell: WeeklyCell,
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WasteRow {
    pub partition: i32,
    pub week_start: i64,
    pub user: String,
    pub reason: String,
    pub cell: WasteCell,
}

/// Everything one call produces (CONTRACT §3 row shapes, columnar in py.rs).
#[derive(Debug, Default)]
pub struct BatchOut<'a> {
    pub events: Vec<EventRow<'a>>,
    pub rejected: Vec<Rejection<'a>>,
    pub hourly: Vec<HourlyRow>,
    pub weekly: Vec<WeeklyRow>,
    pub waste: Vec<WasteRow>,
    pub duplicates: u64,
    pub version: u64,
    pub watermarks: Vec<(i32, i64)>,
    /// Per partition of the batch: the offset after the last message applied
    /// (stored last by the worker; where a restored partition resumes).
    pub progress: Vec<(i32, i64)>,
    /// Messages skipped because a restore showed them already applied.
    pub replayed: u64,
    /// Spans of OTLP records that are not GenAI spans (skipped, not rejected).
    pub skipped_spans: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    watermark: Option<i64>,
    dedupe: Dedupe,
    windows: Windows,
    /// Waste-signal state per user (fingerprints of the last hour or so).
    waste: HashMap<String, UserWaste>,
    /// Watermark at the last sweep of `waste`.
    waste_swept: i64,
    /// Messages below this offset are already applied (from the store's
    /// progress at restore, then advanced by every batch): a replay skips them.
    resume: i64,
    /// A restore in chunks: its batch stamp and the cells its events touched.
    restoring: Option<(u64, Touched)>,
}

/// An element after the pure stage: an event with resolved counts, or a rejection.
enum Parsed<'a> {
    Ok(Box<Resolved<'a>>),
    Rejected(Reason, &'a [u8]),
    /// A span of an OTLP record that is not a GenAI span (keeps its index).
    Skipped,
}

/// What a batch's messages hold: usage events (CONTRACT §1) or OTLP trace
/// records (§1b); both go through the same checks and windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Events,
    Otlp,
}

struct Resolved<'a> {
    event: Event<'a>,
    raw: &'a [u8],
    input: u64,
    output: u64,
    estimated: bool,
    fingerprint: Fingerprint,
}

/// Number of state entries, for metrics and tests of boundedness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    pub partitions: usize,
    pub open_weeks: usize,
    pub hourly_cells: usize,
    pub weekly_cells: usize,
    pub waste_cells: usize,
    pub dedupe_ids: usize,
    pub waste_users: usize,
    pub waste_entries: usize,
}

/// Stream state of all partitions this worker owns.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    parts: HashMap<i32, PartitionState>,
    prices: HashMap<String, Price>,
    stamp: u64,
    last_version: u64,
}

fn resolve<'a>(json: &'a [u8], raw: &'a [u8], cfg: &Config) -> Parsed<'a> {
    match parse_event(json) {
        Ok(event) => resolve_event(event, raw, cfg),
        Err(r) => Parsed::Rejected(r, raw),
    }
}

fn resolve_event<'a>(mut event: Event<'a>, raw: &'a [u8], cfg: &Config) -> Parsed<'a> {
    let encodings = &cfg.encodings;
    let mut estimated = false;
    let mut count = |text: &Option<Cow<'_, str>>| {
        let (enc, fallback) = encodings.lookup(&event.model);
        estimated |= fallback;
        text.as_deref().map_or(0, |t| enc.count(t))
    };
    let input = match event.input_tokens {
        Some(n) => n,
        None if event.prompt.is_some() => count(&event.prompt),
        None => 0,
    };
    let output = match event.output_tokens {
        Some(n) => n,
        None if event.output.is_some() => count(&event.output),
        None => 0,
    };
    if let Err(r) = check_bounds(&event, input, output) {
        return Parsed::Rejected(r, raw);
    }
    // Text is used for counting and fingerprints only, never kept; where the
    // gateway sent a fingerprint instead, it stands in for the text.
    let key = &cfg.fingerprint_key;
    let from_text = Fingerprint::of(key, event.prompt.as_deref(), event.output.as_deref());
    let fp = match event.fingerprint.take() {
        None => from_text,
        Some(wire) => match wire.under(key) {
            Ok(sent) => from_text.or(&sent, event.prompt.is_some(), event.output.is_some()),
            Err(r) => return Parsed::Rejected(r, raw),
        },
    };
    event.prompt = None;
    event.output = None;
    Parsed::Ok(Box::new(Resolved {
        event,
        raw,
        input,
        output,
        estimated,
        fingerprint: fp,
    }))
}

/// The pure stage of one message; a panic on it (a core bug this input hits)
/// makes the whole message one `poison` rejection, the batch goes on.
fn parse_message<'a>(format: Format, m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    isolate(|| {
        inject_poison(&cfg.fault_poison, m.value);
        match format {
            Format::Events => parse_elements(m, cfg),
            Format::Otlp => parse_otlp(m, cfg),
        }
    })
    .unwrap_or_else(|| vec![Parsed::Rejected(Reason::Poison, m.value)])
}

fn parse_elements<'a>(m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    // The common case, one event per message: one pass over its bytes.
    if let Some(body) = single_object(m.value, cfg.max_message_bytes) {
        if let Ok(event) = parse_event(body) {
            return vec![resolve_event(event, m.value, cfg)];
        }
    }
    let mut elements = split_message(m.value, cfg.max_message_bytes);
    cap_elements(m.value, &mut elements, cfg.limits.max_elements);
    elements
        .into_iter()
        .map(|el| match el {
            Element::Event { json, raw } => resolve(json, raw, cfg),
            Element::Rejected(r, raw) => Parsed::Rejected(r, raw),
        })
        .collect()
}

/// An OTLP record's spans: each GenAI span an event (then resolved as any
/// event: counts, bounds), each other span `Skipped`; `idx` = the span's
/// position in the record.
fn parse_otlp<'a>(m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    otlp::decode(m.value, cfg.max_message_bytes)
        .into_iter()
        .map(|item| match item {
            otlp::Item::Event(event, raw) => resolve_event(*event, raw, cfg),
            otlp::Item::Rejected(r, raw) => Parsed::Rejected(r, raw),
            otlp::Item::Skipped => Parsed::Skipped,
        })
        .collect()
}

impl Core {
    pub fn new(cfg: Config) -> Result<Core, CoreError> {
        cfg.validate()?;
        Ok(Core {
            cfg,
            parts: HashMap::new(),
            prices: HashMap::new(),
            stamp: 0,
            last_version: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn next_version(&mut self, now_ms: i64) -> u64 {
        let now_us = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        self.last_version = now_us.max(self.last_version.saturating_add(1));
        self.last_version
    }

    fn price(&mut self, model: &str) -> Price {
        if let Some(p) = self.prices.get(model) {
            return *p;
        }
        let p = self.cfg.price(model);
        if self.prices.len() >= PRICE_CACHE_MAX {
            self.prices.clear();
        }
        self.prices.insert(model.to_owned(), p);
        p
    }

    /// Processes one batch of messages (docs/semantics.md).
    pub fn process<'a>(&mut self, msgs: &[Message<'a>], now_ms: i64) -> BatchOut<'a> {
        self.process_as(Format::Events, msgs, now_ms)
    }

    /// Processes one batch of messages of `format`: the same stream checks,
    /// windows and progress for both (the caller keeps the partitions of
    /// different topics apart).
    pub fn process_as<'a>(
        &mut self,
        format: Format,
        msgs: &[Message<'a>],
        now_ms: i64,
    ) -> BatchOut<'a> {
        let applied = |parts: &HashMap<i32, PartitionState>, m: &Message<'_>| {
            parts.get(&m.partition).is_some_and(|s| m.offset < s.resume)
        };
        let fresh: Vec<Message<'a>>;
        let all = msgs.len();
        let msgs = if msgs.iter().any(|m| applied(&self.parts, m)) {
            fresh = msgs
                .iter()
                .filter(|m| !applied(&self.parts, m))
                .copied()
                .collect();
            &fresh[..]
        } else {
            msgs
        };
        let cfg = &self.cfg;
        let parsed: Vec<Vec<Parsed<'a>>> = if msgs.len() >= PARALLEL_MIN_MESSAGES {
            msgs.par_iter()
                .map(|m| parse_message(format, m, cfg))
                .collect()
        } else {
            msgs.iter().map(|m| parse_message(format, m, cfg)).collect()
        };
        self.stamp += 1;
        let stamp = self.stamp;
        let mut out = BatchOut {
            version: self.next_version(now_ms),
            replayed: (all - msgs.len()) as u64,
            ..BatchOut::default()
        };
        let mut touched: HashMap<i32, Touched> = HashMap::new();
        for (m, elements) in msgs.iter().zip(parsed) {
            let before = (out.events.len(), out.rejected.len(), out.duplicates);
            let applied =
                isolate(|| self.apply(m, elements, now_ms, stamp, &mut touched, &mut out));
            if applied.is_none() {
                // A panic in the stream stage: this message's rows are dropped
                // (its state may keep part of it) and it is dead-lettered whole.
                out.events.truncate(before.0);
                out.rejected.truncate(before.1);
                out.duplicates = before.2;
                out.rejected.push(Rejection {
                    partition: m.partition,
                    offset: m.offset,
                    idx: 0,
                    reason: Reason::Poison,
                    raw: m.value,
                });
            }
        }
        self.finish(touched, &mut out);
        let mut progress: HashMap<i32, i64> = HashMap::new();
        for m in msgs {
            let next = progress.entry(m.partition).or_insert(i64::MIN);
            *next = (*next).max(m.offset.saturating_add(1));
        }
        for (p, next) in progress {
            let st = self.parts.entry(p).or_default();
            st.resume = st.resume.max(next);
            out.progress.push((p, st.resume));
        }
        out.progress.sort_unstable();
        out
    }

    /// The stream stage of one message's elements, in order, within the
    /// rejection caps: past one, the rest of the message is one rejection.
    fn apply<'a>(
        &mut self,
        m: &Message<'a>,
        elements: Vec<Parsed<'a>>,
        now_ms: i64,
        stamp: u64,
        touched: &mut HashMap<i32, Touched>,
        out: &mut BatchOut<'a>,
    ) {
        let limits = self.cfg.limits;
        let last = elements.len().saturating_sub(1);
        let mut rejections = 0;
        for (idx, el) in elements.into_iter().enumerate() {
            let rejected = match el {
                Parsed::Skipped => {
                    out.skipped_spans += 1;
                    None
                }
                Parsed::Rejected(r, raw) => Some((r, raw)),
                Parsed::Ok(res) => {
                    let raw = res.raw;
                    self.accept(m, *res, now_ms, stamp, touched, out)
                        .err()
                        .map(|r| (r, raw))
                }
            };
            let Some((reason, raw)) = rejected else {
                continue;
            };
            let r = Rejection {
                partition: m.partition,
                offset: m.offset,
                idx: u32::try_from(idx).unwrap_or(u32::MAX),
                reason,
                raw,
            };
            if push_rejection(
                &limits,
                m.value,
                &mut rejections,
                idx == last,
                &mut out.rejected,
                r,
            ) {
                return;
            }
        }
    }

    /// Stream checks and windowing of one valid event. `Err` = rejected.
    fn accept<'a>(
        &mut self,
        m: &Message<'a>,
        res: Resolved<'a>,
        now_ms: i64,
        stamp: u64,
        touched: &mut HashMap<i32, Touched>,
        out: &mut BatchOut<'a>,
    ) -> Result<(), Reason> {
        let ev = res.event;
        if ev.ts > now_ms.saturating_add(self.cfg.future_tolerance_ms) {
            return Err(Reason::FutureTimestamp);
        }
        let (grace, horizon) = (self.cfg.grace_ms, self.cfg.dedupe_horizon_ms);
        let price = self.price(&ev.model);
        let st = self.parts.entry(m.partition).or_default();
        let floor = st.watermark.map_or(i64::MIN, |w| w.saturating_sub(horizon));
        if st.dedupe.contains(&ev.event_id, floor) {
            out.duplicates += 1;
            return Ok(());
        }
        if Windows::is_late(ev.ts, st.watermark, grace) {
            return Err(Reason::Late);
        }
        st.dedupe.insert(&ev.event_id, ev.ts);
        st.watermark = Some(st.watermark.map_or(ev.ts, |w| w.max(ev.ts)));
        let cached = ev.cached_input_tokens.unwrap_or(0);
        let cost = ((res.input - cached) as f64 * price.0
            + cached as f64 * price.1
            + res.output as f64 * price.2)
            / 1_000_000.0;
        let since = st
            .watermark
            .map_or(i64::MIN, |w| w.saturating_sub(self.cfg.waste_memory_ms()));
        let (wasted, waste_reason) = st.waste.entry_ref(ev.user.as_ref()).or_default().judge(
            &Request {
                ts: ev.ts,
                since,
                model: &ev.model,
                is_error: ev.is_error,
                input_tokens: res.input,
                output_tokens: res.output,
                fp: &res.fingerprint,
            },
            &self.cfg.waste,
        );
        st.windows.add(
            &Contribution {
                ts: ev.ts,
                user: &ev.user,
                model: &ev.model,
                team: &ev.team,
                input_tokens: res.input,
                output_tokens: res.output,
                cached_input_tokens: cached,
                wasted_tokens: wasted,
                waste_reason,
                cost_usd: cost,
            },
            stamp,
            touched.entry(m.partition).or_default(),
        );
        out.events.push(EventRow {
            reasoning_tokens: ev.reasoning_tokens.unwrap_or(0),
            event: ev,
            input_tokens: res.input,
            output_tokens: res.output,
            cached_input_tokens: cached,
            tokens_estimated: res.estimated,
            cost_usd: cost,
            wasted_tokens: wasted,
            waste_reason,
            fingerprint: res.fingerprint,
            partition: m.partition,
            offset: m.offset,
        });
        Ok(())
    }

    /// Closes weeks, restates touched cells, frees dedupe memory.
    fn finish(&mut self, touched: HashMap<i32, Touched>, out: &mut BatchOut<'_>) {
        let (grace, horizon) = (self.cfg.grace_ms, self.cfg.dedupe_horizon_ms);
        let mut parts: Vec<(i32, Touched)> = touched.into_iter().collect();
        parts.sort_by_key(|(p, _)| *p);
        for (p, t) in parts {
            let Some(st) = self.parts.get_mut(&p) else {
                continue;
            };
            let Some(wm) = st.watermark else { continue };
            let closed: HashMap<i64, Week> = st.windows.close(wm, grace).into_iter().collect();
            let week = |wk: i64| st.windows.weeks.get(&wk).or_else(|| closed.get(&wk));
            for (wk, hour, user, model) in t.hourly {
                if let Some(w) = week(wk) {
                    if let Some(cell) = w.hourly.get(&(hour, user, model)) {
                        out.hourly.push(HourlyRow {
                            partition: p,
                            hour,
                            user: w.names.name(user).to_owned(),
                            model: w.names.name(model).to_owned(),
                            cell: cell.clone(),
                        });
                    }
                }
            }
            for (wk, user, reason) in t.waste {
                if let Some(w) = week(wk) {
                    if let Some(cell) = w.waste.get(&(user, reason)) {
                        out.waste.push(WasteRow {
                            partition: p,
                            week_start: wk,
                            user: w.names.name(user).to_owned(),
                            reason: w.names.name(reason).to_owned(),
                            cell: cell.clone(),
                        });
                    }
                }
            }
            // Weekly cells of weeks closed by this batch are emitted below, once, as final.
            for (wk, user) in t.weekly {
                if let Some(w) = st.windows.weeks.get(&wk) {
                    if let Some(cell) = w.weekly.get(&user) {
                        out.weekly.push(WeeklyRow {
                            partition: p,
                            week_start: wk,
                            user: w.names.name(user).to_owned(),
                            cell: cell.clone(),
                            closed: false,
                        });
                    }
                }
            }
            let mut closed: Vec<(i64, Week)> = closed.into_iter().collect();
            closed.sort_by_key(|(wk, _)| *wk);
            for (wk, w) in closed {
                let mut users: Vec<(&str, WeeklyCell)> = w
                    .weekly
                    .into_iter()
                    .map(|(u, c)| (w.names.name(u), c))
                    .collect();
                users.sort_by(|a, b| a.0.cmp(b.0));
                for (user, cell) in users {
                    out.weekly.push(WeeklyRow {
                        partition: p,
                        week_start: wk,
                        user: user.to_owned(),
                        cell,
                        closed: true,
                    });
                }
            }
            st.dedupe.evict(wm.saturating_sub(horizon));
            let memory = self.cfg.waste_memory_ms();
            if wm.saturating_sub(st.waste_swept) >= memory / 8 {
                let before = wm.saturating_sub(memory);
                st.waste.retain(|_, u| !u.evict(before));
                st.waste_swept = wm;
            }
            out.watermarks.push((p, wm));
        }
    }

    /// Rebuilds a partition's state from its stored events (the worker's
    /// source of truth after a restart or rebalance) and restates every open
    /// cell. `events` must be the partition's accepted events with
    /// `ts >= min(oldest open week, watermark - horizon)` and, when the store
    /// knows the partition's progress, offsets below `resume`: messages below
    /// `resume` are then skipped by `process` (already applied), whatever their
    /// event time — exactly-once beyond the dedupe horizon.
    pub fn restore(
        &mut self,
        partition: i32,
        watermark: Option<i64>,
        min_version: u64,
        events: &[StoredEvent<'_>],
        resume: Option<i64>,
    ) -> BatchOut<'static> {
        let wm = watermark.or_else(|| events.iter().map(|e| e.contribution.ts).max());
        self.restore_begin(partition, wm, min_version, resume);
        self.restore_events(partition, events);
        self.restore_end(partition)
    }

    /// Starts rebuilding a partition's state (a restore in chunks: then
    /// [`Core::restore_events`] in Kafka offset order, then
    /// [`Core::restore_end`]); `watermark` is the stored events' max ts.
    pub fn restore_begin(
        &mut self,
        partition: i32,
        watermark: Option<i64>,
        min_version: u64,
        resume: Option<i64>,
    ) {
        self.parts.remove(&partition);
        self.last_version = self.last_version.max(min_version);
        self.stamp += 1;
        let st = self.parts.entry(partition).or_default();
        st.watermark = watermark;
        st.resume = resume.unwrap_or(0);
        st.restoring = Some((self.stamp, Touched::default()));
    }

    /// Adds stored events to a partition being restored: dedupe memory, the
    /// waste memory of the last waste window, the open weeks' cells.
    pub fn restore_events(&mut self, partition: i32, events: &[StoredEvent<'_>]) {
        let grace = self.cfg.grace_ms;
        let waste_memory = self.cfg.waste_memory_ms();
        let st = self.parts.entry(partition).or_default();
        let (stamp, mut touched) = st.restoring.take().unwrap_or_default();
        let wm = st.watermark;
        let waste_from = wm.map_or(i64::MIN, |w| w.saturating_sub(waste_memory));
        for e in events {
            let c = &e.contribution;
            st.dedupe.insert(e.event_id, c.ts);
            if c.ts >= waste_from {
                // Replays the waste memory; the verdicts were stored with the event.
                st.waste.entry_ref(c.user).or_default().judge(
                    &Request {
                        ts: c.ts,
                        since: i64::MIN,
                        model: c.model,
                        is_error: false,
                        input_tokens: c.input_tokens,
                        output_tokens: c.output_tokens,
                        fp: &e.fingerprint,
                    },
                    &self.cfg.waste,
                );
            }
            if !Windows::is_late(c.ts, wm, grace) {
                st.windows.add(c, stamp, &mut touched);
            }
        }
        st.restoring = Some((stamp, touched));
    }

    /// Ends a restore: the rows of the open cells it rebuilt, restated.
    pub fn restore_end(&mut self, partition: i32) -> BatchOut<'static> {
        let mut out = BatchOut {
            version: self.last_version + 1,
            ..BatchOut::default()
        };
        self.last_version = out.version;
        let st = self.parts.entry(partition).or_default();
        let touched = st.restoring.take().map(|(_, t)| t).unwrap_or_default();
        if st.watermark.is_some() {
            let mut map = HashMap::new();
            map.insert(partition, touched);
            self.finish(map, &mut out);
        }
        out
    }

    pub fn drop_partition(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }

    pub fn partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.parts.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn watermark(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition).and_then(|s| s.watermark)
    }

    pub fn state_size(&self) -> StateSize {
        let mut s = StateSize {
            partitions: self.parts.len(),
            ..StateSize::default()
        };
        for st in self.parts.values() {
            let (h, w, x) = st.windows.cell_counts();
            s.open_weeks += st.windows.weeks.len();
            s.hourly_cells += h;
            s.weekly_cells += w;
            s.waste_cells += x;
            s.dedupe_ids += st.dedupe.len();
            s.waste_users += st.waste.len();
            s.waste_entries += st.waste.values().map(UserWaste::size).sum::<usize>();
        }
        s
    }
}

/// An accepted event read back from the store, for [`Core::restore`].
#[derive(Debug, Clone)]
pub struct StoredEvent<'a> {
    pub event_id: &'a str,
    pub contribution: Contribution<'a>,
    pub fingerprint: Fingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, DAY_MS, HOUR_MS, WEEK_MS};

    const MON: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z, a Monday
    const FAR_FUTURE: i64 = 4_000_000_000_000;

    fn ev(id: &str, ts: i64, user: &str, tokens: u64) -> Vec<u8> {
        format!(r#"{{"event_id":"{id}","ts":{ts},"user":"{user}","model":"gpt-4o","input_tokens":{tokens},"output_tokens":0}}"#)
            .into_bytes()
    }

    /// `values` as the messages of `partition` from offset `first` on.
    fn messages<V: AsRef<[u8]>>(partition: i32, first: i64, values: &[V]) -> Vec<Message<'_>> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Message {
                partition,
                offset: first + i as i64,
                value: v.as_ref(),
            })
            .collect()
    }

    fn run(
        core: &mut Core,
        partition: i32,
        values: &[Vec<u8>],
    ) -> (usize, Vec<String>, u64, Vec<WeeklyRow>) {
        // Each call continues the partition's offsets (a new batch, not a replay).
        let first = core.parts.get(&partition).map_or(0, |s| s.resume);
        let msgs = messages(partition, first, values);
        let out = core.process(&msgs, FAR_FUTURE);
        (
            out.events.len(),
            out.rejected.iter().map(|r| r.reason.to_string()).collect(),
            out.duplicates,
            out.weekly,
        )
    }

    #[test]
    fn duplicates_are_counted_once_within_the_horizon() {
        let mut core = Core::new(Config::default()).unwrap();
        let (n, rej, dups, weekly) = run(
            &mut core,
            0,
            &[
                ev("a", MON, "u", 10),
                ev("a", MON, "u", 10),
                ev("b", MON + 1, "u", 5),
            ],
        );
        assert_eq!((n, rej.len(), dups), (2, 0, 1));
        assert_eq!(weekly.len(), 1);
        assert_eq!(weekly[0].cell.input_tokens, 15);
        // Another batch: still a duplicate.
        let (n, _, dups, _) = run(&mut core, 0, &[ev("a", MON, "u", 10)]);
        assert_eq!((n, dups), (0, 1));
        // Past the horizon (24 h of event time) the id is forgotten.
        run(&mut core, 0, &[ev("c", MON + DAY_MS + 1, "u", 1)]);
        let (n, _, dups, _) = run(&mut core, 0, &[ev("a", MON, "u", 10)]);
        assert_eq!((n, dups), (1, 0));
        // Partitions are independent.
        let (n, _, _, _) = run(&mut core, 1, &[ev("b", MON + 1, "u", 5)]);
        assert_eq!(n, 1);
    }

    #[test]
    fn weeks_close_after_grace_and_late_events_are_rejected() {
        let mut core = Core::new(Config::default()).unwrap();
        let sunday_last = parse_rfc3339("2024-01-07T23:59:59.999Z").unwrap();
        run(&mut core, 0, &[ev("a", sunday_last, "u", 7)]);
        // Next week, inside the grace hour: the old week still takes events.
        let (n, rej, _, weekly) = run(
            &mut core,
            0,
            &[
                ev("b", MON + WEEK_MS + HOUR_MS - 1, "u", 1),
                ev("c", MON, "u", 2),
            ],
        );
        assert_eq!((n, rej.len()), (2, 0));
        assert!(weekly.iter().all(|w| !w.closed));
        // The watermark reaches week end + grace: week 1 closes, final rows once.
        let (_, _, _, weekly) = run(&mut core, 0, &[ev("d", MON + WEEK_MS + HOUR_MS, "v", 1)]);
        let finals: Vec<&WeeklyRow> = weekly.iter().filter(|w| w.closed).collect();
        assert_eq!(finals.len(), 1);
        assert_eq!(
            (
                finals[0].week_start,
                finals[0].cell.input_tokens,
                finals[0].cell.requests
            ),
            (MON, 9, 2)
        );
        let (n, rej, _, _) = run(&mut core, 0, &[ev("e", MON + 5, "u", 1)]);
        assert_eq!((n, rej), (0, vec!["late".to_owned()]));
        assert_eq!(
            core.state_size().open_weeks,
            1,
            "closed week state is dropped"
        );
    }

    #[test]
    fn future_events_are_rejected_against_the_batch_clock() {
        let mut core = Core::new(Config::default()).unwrap();
        let v = ev("a", MON + 600_001, "u", 1);
        let out = core.process(
            &[Message {
                partition: 0,
                offset: 0,
                value: &v,
            }],
            MON,
        );
        assert_eq!(out.rejected[0].reason, Reason::FutureTimestamp);
        let v = ev("a", MON + 600_000, "u", 1);
        let out = core.process(
            &[Message {
                partition: 0,
                offset: 1,
                value: &v,
            }],
            MON,
        );
        assert_eq!(out.events.len(), 1);
    }

    #[test]
    fn hourly_rollover_and_restatement() {
        let mut core = Core::new(Config::default()).unwrap();
        let msgs = [
            ev("a", MON + HOUR_MS - 1, "u", 1),
            ev("b", MON + HOUR_MS, "u", 2),
        ];
        let m: Vec<Message<'_>> = msgs
            .iter()
            .map(|v| Message {
                partition: 0,
                offset: 0,
                value: v,
            })
            .collect();
        let out = core.process(&m, FAR_FUTURE);
        let mut hours: Vec<(i64, u64)> = out
            .hourly
            .iter()
            .map(|h| (h.hour, h.cell.input_tokens))
            .collect();
        hours.sort_unstable();
        assert_eq!(hours, vec![(MON, 1), (MON + HOUR_MS, 2)]);
        let v = ev("c", MON + HOUR_MS + 5, "u", 3);
        let out2 = core.process(
            &[Message {
                partition: 0,
                offset: 2,
                value: &v,
            }],
            FAR_FUTURE,
        );
        assert_eq!(out2.hourly.len(), 1, "only touched cells are restated");
        assert_eq!(
            out2.hourly[0].cell.input_tokens, 5,
            "restatements are cumulative"
        );
        assert!(out2.version > out.version);
    }

    #[test]
    fn state_is_bounded_by_open_weeks_and_horizon() {
        let mut core = Core::new(Config::default()).unwrap();
        for day in 0..120 {
            let batch: Vec<Vec<u8>> = (0..50)
                .map(|u| {
                    ev(
                        &format!("{day}-{u}"),
                        MON + day * DAY_MS,
                        &format!("user{u}"),
                        1,
                    )
                })
                .collect();
            run(&mut core, 0, &batch);
        }
        let s = core.state_size();
        assert!(s.open_weeks <= 2, "{s:?}");
        assert!(s.weekly_cells <= 100, "{s:?}");
        assert!(s.dedupe_ids <= 100, "{s:?}");
    }

    #[test]
    fn a_restore_in_chunks_equals_one_in_one_go() {
        let users = ["u", "v", "w"];
        let ids: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
        let stored: Vec<StoredEvent<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| StoredEvent {
                event_id: id,
                contribution: Contribution {
                    ts: MON + 6 * DAY_MS + i as i64 * 3_000_000,
                    user: users[i % 3],
                    team: if i % 5 == 0 { "t" } else { "" },
                    model: "m",
                    input_tokens: 5000 + (i % 2) as u64,
                    output_tokens: 10,
                    cached_input_tokens: 0,
                    wasted_tokens: (i % 4) as u64,
                    waste_reason: if i % 4 > 0 { "agent_loop" } else { "" },
                    cost_usd: 0.25,
                },
                fingerprint: Fingerprint::default(),
            })
            .collect();
        let wm = stored.iter().map(|e| e.contribution.ts).max();
        let mut whole = Core::new(Config::default()).unwrap();
        let a = whole.restore(0, wm, 7, &stored, Some(40));
        let mut chunked = Core::new(Config::default()).unwrap();
        chunked.restore_begin(0, wm, 7, Some(40));
        for part in stored.chunks(7) {
            chunked.restore_events(0, part);
        }
        let b = chunked.restore_end(0);
        assert_eq!(
            (a.version, &a.weekly, &a.hourly, &a.waste),
            (b.version, &b.weekly, &b.hourly, &b.waste)
        );
        assert!(!a.weekly.is_empty());
        // ...and the same state: the next batch gets the same verdicts and rows.
        let msg = ev("e39", MON + 6 * DAY_MS + 3_000_001, "v", 5001);
        let next = ev("n", MON + 6 * DAY_MS + 200_000_000, "v", 5001);
        let m = [(40, &msg), (41, &next)].map(|(offset, v)| Message {
            partition: 0,
            offset,
            value: v,
        });
        let (x, y) = (
            whole.process(&m, FAR_FUTURE),
            chunked.process(&m, FAR_FUTURE),
        );
        assert_eq!(x.duplicates, 1);
        assert_eq!(
            (x.duplicates, &x.weekly, x.events.len()),
            (y.duplicates, &y.weekly, y.events.len())
        );
        assert_eq!(whole.state_size(), chunked.state_size());
    }

    #[test]
    fn restore_rebuilds_the_waste_memory() {
        // Two identical counts-only requests stored; the third, seconds
        // later, is judged a storm exactly as without the restart.
        let contribution = |ts| Contribution {
            ts,
            user: "u",
            team: "",
            model: "m",
            input_tokens: 5000,
            output_tokens: 10,
            cached_input_tokens: 0,
            wasted_tokens: 0,
            waste_reason: "",
            cost_usd: 0.0,
        };
        let stored: Vec<StoredEvent<'_>> = ["a", "b"]
            .iter()
            .zip([MON, MON + 1000])
            .map(|(id, ts)| StoredEvent {
                event_id: id,
                contribution: contribution(ts),
                fingerprint: Fingerprint::default(),
            })
            .collect();
        let mut core = Core::new(Config::default()).unwrap();
        core.restore(0, Some(MON + 1000), 0, &stored, None);
        let msg = format!(
            r#"{{"event_id":"c","ts":{},"user":"u","model":"m","input_tokens":5000,"output_tokens":10}}"#,
            MON + 2000
        );
        let m = [Message {
            partition: 0,
            offset: 9,
            value: msg.as_bytes(),
        }];
        let out = core.process(&m, MON + 3000);
        assert_eq!(out.events[0].waste_reason, crate::waste::RETRY_STORM);
        assert_eq!(out.events[0].wasted_tokens, 5010);
        assert!(core.state_size().waste_entries > 0);
    }

    #[test]
    fn restore_rebuilds_dedupe_and_windows() {
        let mut core = Core::new(Config::default()).unwrap();
        let stored = [StoredEvent {
            event_id: "a",
            contribution: Contribution {
                ts: MON,
                user: "u",
                team: "t",
                model: "m",
                input_tokens: 4,
                output_tokens: 1,
                cached_input_tokens: 0,
                wasted_tokens: 0,
                waste_reason: "",
                cost_usd: 0.5,
            },
            fingerprint: Fingerprint::default(),
        }];
        let out = core.restore(3, Some(MON), 41, &stored, None);
        assert_eq!(out.weekly.len(), 1);
        assert_eq!(out.weekly[0].cell.team, "t");
        assert!(out.version > 41);
        let (n, _, dups, weekly) = run(&mut core, 3, &[ev("a", MON, "u", 4), ev("b", MON, "u", 1)]);
        assert_eq!((n, dups), (1, 1));
        assert_eq!(weekly[0].cell.input_tokens, 5);
    }

    #[test]
    fn messages_below_the_restored_progress_are_skipped_whatever_their_time() {
        let day = 86_400_000;
        let mut core = Core::new(Config::default()).unwrap();
        // Offsets 0..2 applied: an old event (beyond the dedupe horizon of the
        // watermark) and a recent one; a replay of both must change nothing.
        let old = ev("old", MON + 1000, "u", 7);
        let recent = ev("new", MON + 3 * day, "u", 5);
        let (n, _, _, _) = run(&mut core, 0, &[old.clone(), recent.clone()]);
        assert_eq!(n, 2);
        let msgs = [
            Message {
                partition: 0,
                offset: 0,
                value: &old,
            },
            Message {
                partition: 0,
                offset: 1,
                value: &recent,
            },
            Message {
                partition: 0,
                offset: 2,
                value: &ev("next", MON + 3 * day, "u", 1),
            },
        ];
        let out = core.process(&msgs, FAR_FUTURE);
        assert_eq!((out.replayed, out.events.len(), out.duplicates), (2, 1, 0));
        assert_eq!(out.progress, vec![(0, 3)]);
        assert_eq!(out.weekly[0].cell.input_tokens, 13);
        // After a restore with progress 2, the same replay is skipped too; without
        // progress, "old" (older than watermark - horizon) would count again.
        for (resume, counted) in [(Some(2), 13), (None, 20)] {
            let new = Contribution {
                ts: MON + 3 * day,
                user: "u",
                team: "",
                model: "m",
                input_tokens: 5,
                output_tokens: 0,
                cached_input_tokens: 0,
                wasted_tokens: 0,
                waste_reason: "",
                cost_usd: 0.0,
            };
            let stored = [("old", MON + 1000, 7), ("new", MON + 3 * day, 5)].map(|(id, ts, n)| {
                StoredEvent {
                    event_id: id,
                    contribution: Contribution {
                        ts,
                        input_tokens: n,
                        ..new
                    },
                    fingerprint: Fingerprint::default(),
                }
            });
            core.restore(0, Some(MON + 3 * day), 0, &stored, resume);
            let out = core.process(&msgs[..2], FAR_FUTURE);
            let restated = core.process(&msgs[2..], FAR_FUTURE).weekly;
            assert_eq!(out.replayed, if resume.is_some() { 2 } else { 0 });
            assert_eq!(restated[0].cell.input_tokens, counted, "resume {resume:?}");
        }
    }

    #[test]
    fn errors_are_waste_and_cost_uses_longest_prefix() {
        let cfg = Config {
            prices: vec![
                ("gpt-4".into(), (1.0, 0.5, 2.0)),
                ("gpt-4o".into(), (10.0, 5.0, 20.0)),
            ],
            ..Config::default()
        };
        let mut core = Core::new(cfg).unwrap();
        let v = format!(
            r#"{{"event_id":"x","ts":{MON},"user":"u","model":"gpt-4o-mini","input_tokens":1000000,"cached_input_tokens":500000,"output_tokens":1000000,"status":"error"}}"#
        );
        let out = core.process(
            &[Message {
                partition: 0,
                offset: 0,
                value: v.as_bytes(),
            }],
            FAR_FUTURE,
        );
        let e = &out.events[0];
        assert!((e.cost_usd - (5.0 + 2.5 + 20.0)).abs() < 1e-9);
        assert_eq!(
            (e.wasted_tokens, e.waste_reason),
            (2_000_000, "failed_request")
        );
        assert_eq!(out.waste.len(), 1);
    }

    #[test]
    fn text_is_tokenized_when_counts_are_missing() {
        let mut core = Core::new(Config::default()).unwrap();
        let v = format!(
            r#"{{"event_id":"x","ts":{MON},"user":"u","model":"gpt-4o","prompt":"hello world","output":"hi"}}"#
        );
        let w = format!(
            r#"{{"event_id":"y","ts":{MON},"user":"u","model":"mystery-1","prompt":"hello world","output_tokens":3}}"#
        );
        let out = core.process(
            &[
                Message {
                    partition: 0,
                    offset: 0,
                    value: v.as_bytes(),
                },
                Message {
                    partition: 0,
                    offset: 1,
                    value: w.as_bytes(),
                },
            ],
            FAR_FUTURE,
        );
        assert_eq!(
            (
                out.events[0].input_tokens,
                out.events[0].output_tokens,
                out.events[0].tokens_estimated
            ),
            (2, 1, false)
        );
        assert_eq!(
            (
                out.events[1].input_tokens,
                out.events[1].output_tokens,
                out.events[1].tokens_estimated
            ),
            (2, 3, true)
        );
    }

    fn limited(max_elements: usize, per_message: usize, per_batch: usize) -> Core {
        Core::new(Config {
            limits: Limits {
                max_elements,
                max_rejections_per_message: per_message,
                max_rejections_per_batch: per_batch,
            },
            fault_poison: b"POISON".to_vec(),
            ..Config::default()
        })
        .unwrap()
    }

    fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.join(&b'\n')
    }

    #[test]
    fn past_the_rejection_cap_the_rest_of_a_message_is_one_rejection() {
        let mut core = Core::new(Config::default()).unwrap();
        let mut lines: Vec<Vec<u8>> = vec![ev("a", MON, "u", 1)];
        lines.extend((0..250).map(|_| b"1".to_vec()));
        lines.push(ev("b", MON, "u", 1));
        let value = ndjson(&lines);
        let msgs = [Message {
            partition: 0,
            offset: 0,
            value: &value,
        }];
        let out = core.process(&msgs, FAR_FUTURE);
        assert_eq!(out.events.len(), 1, "the event before the cap is counted");
        assert_eq!(out.rejected.len(), 101);
        assert!(out.rejected[..100]
            .iter()
            .all(|r| r.reason == Reason::NotAnObject));
        let rest = &out.rejected[100];
        assert_eq!((rest.reason, rest.idx), (Reason::TooManyRejections, 101));
        assert!(rest.raw.ends_with(&lines[251]), "the rest runs to the end");
        let dead: usize = out.rejected.iter().map(|r| r.raw.len()).sum();
        assert!(dead <= value.len(), "{dead} > {}", value.len());
    }

    #[test]
    fn past_the_element_cap_the_rest_is_one_rejection() {
        let mut core = limited(3, 100, 100);
        let items: Vec<String> = (0..5)
            .map(|i| String::from_utf8(ev(&format!("e{i}"), MON, "u", 1)).unwrap())
            .collect();
        let value = format!("[{}]", items.join(","));
        let msgs = [Message {
            partition: 0,
            offset: 0,
            value: value.as_bytes(),
        }];
        let out = core.process(&msgs, FAR_FUTURE);
        assert_eq!(out.events.len(), 3);
        assert_eq!(out.rejected.len(), 1);
        let r = &out.rejected[0];
        assert_eq!((r.reason, r.idx), (Reason::TooManyElements, 3));
        assert_eq!(r.raw, format!("{},{}]", items[3], items[4]).as_bytes());
    }

    #[test]
    fn past_the_batch_cap_each_message_gives_at_most_one_rejection() {
        let mut core = limited(100, 100, 2);
        let bad = ndjson(&[
            b"1".to_vec(),
            b"2".to_vec(),
            b"3".to_vec(),
            ev("x", MON, "u", 1),
        ]);
        let single = b"7".to_vec();
        let values = [&bad, &bad, &single];
        let msgs = messages(0, 0, &values);
        let out = core.process(&msgs, FAR_FUTURE);
        let got: Vec<(i64, u32, String)> = out
            .rejected
            .iter()
            .map(|r| (r.offset, r.idx, r.reason.to_string()))
            .collect();
        let want = [
            (0, 0, "not_an_object"),
            (0, 1, "not_an_object"),
            (0, 2, "too_many_rejections"),
            (1, 0, "too_many_rejections"),
            (2, 0, "not_an_object"), // the whole rest: its own reason
        ];
        let want: Vec<(i64, u32, String)> = want
            .iter()
            .map(|(o, i, r)| (*o, *i, r.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(out.rejected[3].raw, &bad[..], "the whole message, once");
        assert!(out.events.is_empty());
    }

    #[test]
    fn a_message_the_core_fails_on_is_one_poison_rejection() {
        let mut core = limited(100, 100, 100);
        let poison = ndjson(&[ev("p", MON, "u", 1), b"{\"x\":\"POISON\"}".to_vec()]);
        let (a, b) = (ev("a", MON, "u", 1), ev("b", MON, "u", 2));
        let values = [a, poison.clone(), b];
        let msgs = messages(0, 0, &values);
        let out = core.process(&msgs, FAR_FUTURE);
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.rejected.len(), 1);
        let r = &out.rejected[0];
        assert_eq!(
            (r.reason, r.offset, r.raw),
            (Reason::Poison, 1, &poison[..])
        );
        assert_eq!(out.weekly[0].cell.input_tokens, 3);
    }

    #[test]
    fn the_price_cache_is_bounded_whatever_the_model_names() {
        let mut core = Core::new(Config {
            prices: vec![("gpt-4o".into(), (2.5, 1.25, 10.0))],
            ..Config::default()
        })
        .unwrap();
        let values: Vec<Vec<u8>> = (0..3 * PRICE_CACHE_MAX)
            .map(|i| {
                format!(r#"{{"event_id":"p{i}","ts":{MON},"user":"u","model":"gpt-4o-{i}","input_tokens":1000000}}"#)
                    .into_bytes()
            })
            .collect();
        let msgs = messages(0, 0, &values);
        let out = core.process(&msgs, FAR_FUTURE);
        assert_eq!(out.events.len(), 3 * PRICE_CACHE_MAX);
        assert!(out.events.iter().all(|e| (e.cost_usd - 2.5).abs() < 1e-9));
        assert!(core.prices.len() <= PRICE_CACHE_MAX);
    }
}
