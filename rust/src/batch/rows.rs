//! What one call of the core takes and gives: the messages in, the rows out
//! (docs/schema.md shapes; columnar in py.rs, RowBinary in rowbinary.rs).

use crate::error::Reason;
use crate::event::Event;
use crate::fingerprint::Fingerprint;
use crate::waste::WasteReason;
use crate::window::{HourlyCell, WasteCell, WeeklyCell};

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
    pub waste_reason: Option<WasteReason>,
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

/// Everything one call produces (docs/schema.md row shapes, columnar in py.rs).
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
