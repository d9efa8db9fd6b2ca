//! The batch pipeline: split → validate → tokenize (parallel, pure) then the
//! per-partition stream checks (future, duplicate, late) and windowing
//! (sequential, in message order). See docs/semantics.md.

mod config;
mod parse;
mod restore;
mod rows;
#[cfg(test)]
mod tests;

pub use config::{Config, Price};
pub use parse::Format;
pub use restore::{StoredColumns, StoredEvent};
pub use rows::{BatchOut, EventRow, HourlyRow, Message, Rejection, StateSize, WasteRow, WeeklyRow};

use hashbrown::HashMap;
use rayon::prelude::*;

use crate::dedupe::Dedupe;
use crate::error::{CoreError, Reason};
use crate::guard::{isolate, push_rejection};
use crate::waste::{Request, UserWaste, WasteReason};
use crate::window::{Contribution, Touched, Week, WeeklyCell, Windows};

use parse::{parse_message, Parsed, Resolved};

/// Most model names whose price is cached (model names come from the input:
/// past this the cache starts over, so arbitrary names cannot grow it).
const PRICE_CACHE_MAX: usize = 4096;

/// Batches with at least this many messages are parsed on rayon's pool.
const PARALLEL_MIN_MESSAGES: usize = 512;

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

/// Stream state of all partitions this worker owns.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    parts: HashMap<i32, PartitionState>,
    prices: HashMap<String, Price>,
    stamp: u64,
    last_version: u64,
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
            // Mostly one accepted event per element: no regrowth of the large rows.
            events: Vec::with_capacity(parsed.iter().map(Vec::len).sum()),
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
        let cost = price.cost(res.input, cached, res.output);
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
                waste_reason: WasteReason::name(waste_reason),
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
