//! Event-time windows of one partition: hourly cells per (user, model), weekly
//! cells per user, waste cells per (user, reason), grouped by week so that a
//! closed week is dropped in one step.
//!
//! Names (users, models, reasons) are interned per week: cells are keyed by
//! small integers, so adding an event to an existing cell allocates nothing,
//! and the names go away with their week.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::time::{hour_start, week_start, WEEK_MS};

/// What one accepted event adds to its windows.
#[derive(Debug, Clone, Copy)]
pub struct Contribution<'a> {
    pub ts: i64,
    pub user: &'a str,
    pub model: &'a str,
    pub team: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub wasted_tokens: u64,
    pub waste_reason: &'a str,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyCell {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub wasted_tokens: u64,
    pub cost_usd: f64,
    stamp: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeeklyCell {
    pub team: String,
    pub team_ts: i64,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub wasted_tokens: u64,
    pub cost_usd: f64,
    stamp: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WasteCell {
    pub requests: u64,
    pub wasted_tokens: u64,
    stamp: u64,
}

/// Strings of one week ↔ dense ids.
#[derive(Debug, Default)]
pub struct Names {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

/// Keys of the cells a batch touched, to restate them (and only them).
#[derive(Debug, Default)]
pub struct Touched {
    /// (week, hour, user id, model id)
    pub hourly: Vec<(i64, i64, u32, u32)>,
    /// (week, user id)
    pub weekly: Vec<(i64, u32)>,
    /// (week, user id, reason id)
    pub waste: Vec<(i64, u32, u32)>,
}

#[derive(Debug, Default)]
pub struct Week {
    pub names: Names,
    pub hourly: HashMap<(i64, u32, u32), HourlyCell>,
    pub weekly: HashMap<u32, WeeklyCell>,
    pub waste: HashMap<(u32, u32), WasteCell>,
}

/// All open weeks of one partition.
#[derive(Debug, Default)]
pub struct Windows {
    pub weeks: BTreeMap<i64, Week>,
}

impl Windows {
    /// Adds an event; `stamp` identifies the batch so each touched cell is
    /// recorded once in `touched`.
    pub fn add(&mut self, c: &Contribution<'_>, stamp: u64, touched: &mut Touched) {
        let wk = week_start(c.ts);
        let hour = hour_start(c.ts);
        let week = self.weeks.entry(wk).or_default();
        let user = week.names.id(c.user);
        let model = week.names.id(c.model);

        let h = week.hourly.entry((hour, user, model)).or_default();
        h.requests += 1;
        h.input_tokens += c.input_tokens;
        h.output_tokens += c.output_tokens;
        h.cached_input_tokens += c.cached_input_tokens;
        h.wasted_tokens += c.wasted_tokens;
        h.cost_usd += c.cost_usd;
        if h.stamp != stamp {
            h.stamp = stamp;
            touched.hourly.push((wk, hour, user, model));
        }

        let w = week.weekly.entry(user).or_default();
        w.requests += 1;
        w.input_tokens += c.input_tokens;
        w.output_tokens += c.output_tokens;
        w.wasted_tokens += c.wasted_tokens;
        w.cost_usd += c.cost_usd;
        if !c.team.is_empty()
            && (w.team.is_empty() || (c.ts, c.team) > (w.team_ts, w.team.as_str()))
        {
            c.team.clone_into(&mut w.team);
            w.team_ts = c.ts;
        }
        if w.stamp != stamp {
            w.stamp = stamp;
            touched.weekly.push((wk, user));
        }

        if c.wasted_tokens > 0 {
            let reason = week.names.id(c.waste_reason);
            let x = week.waste.entry((user, reason)).or_default();
            x.requests += 1;
            x.wasted_tokens += c.wasted_tokens;
            if x.stamp != stamp {
                x.stamp = stamp;
                touched.waste.push((wk, user, reason));
            }
        }
    }

    /// Removes and returns the weeks that are closed at `watermark` (a week
    /// closes when the watermark reaches its end plus `grace_ms`).
    pub fn close(&mut self, watermark: i64, grace_ms: i64) -> Vec<(i64, Week)> {
        let mut closed = Vec::new();
        while let Some((&wk, _)) = self.weeks.first_key_value() {
            if watermark < wk + WEEK_MS + grace_ms {
                break;
            }
            if let Some(week) = self.weeks.remove(&wk) {
                closed.push((wk, week));
            }
        }
        closed
    }

    /// Whether an event at `ts` falls in a week that is closed at `watermark`.
    pub fn is_late(ts: i64, watermark: Option<i64>, grace_ms: i64) -> bool {
        watermark.is_some_and(|wm| wm >= week_start(ts) + WEEK_MS + grace_ms)
    }

    pub fn cell_counts(&self) -> (usize, usize, usize) {
        self.weeks.values().fold((0, 0, 0), |(h, w, x), wk| {
            (h + wk.hourly.len(), w + wk.weekly.len(), x + wk.waste.len())
        })
    }
}
