//! The rows of one batch in ClickHouse's `RowBinary` format, ready to insert.
//!
//! The store sends these bytes as they are (`INSERT ... FORMAT RowBinary`), so
//! no Python object is made per row or value on the way to ClickHouse. The
//! column lists here must equal `tokenlord.store.schema` (a unit test checks
//! them against each other and a store test reads back what was inserted).
//! [`decode`] turns a block back into columns (for the Python `Batch`'s
//! column views): the bytes are the single source of what a batch wrote.

use crate::batch::{BatchOut, EventRow, HourlyRow, WasteRow, WeeklyRow};
use crate::waste::WasteReason;

const MS_PER_DAY: i64 = 86_400_000;

/// How a column's value is encoded (and what its column view holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// String / LowCardinality(String): LEB128 length + UTF-8 bytes.
    Str,
    U8,
    U32,
    U64,
    I32,
    I64,
    F64,
    /// DateTime64(3): Int64 epoch ms.
    DateTime64Ms,
    /// DateTime: UInt32 epoch seconds; the view holds epoch ms.
    DateTimeS,
    /// Date: UInt16 days since 1970-01-01; the view holds epoch ms.
    Date,
    /// Nullable(UInt32): 1 = NULL, else 0 + UInt32.
    NullableU32,
}

/// (name, ClickHouse type, encoding) of one column.
pub type Column = (&'static str, &'static str, Ty);

pub const EVENTS: &[Column] = &[
    ("event_id", "String", Ty::Str),
    ("ts", "DateTime64(3, 'UTC')", Ty::DateTime64Ms),
    ("user", "String", Ty::Str),
    ("team", "LowCardinality(String)", Ty::Str),
    ("app", "LowCardinality(String)", Ty::Str),
    ("model", "LowCardinality(String)", Ty::Str),
    ("provider", "LowCardinality(String)", Ty::Str),
    ("session_id", "String", Ty::Str),
    ("input_tokens", "UInt64", Ty::U64),
    ("output_tokens", "UInt64", Ty::U64),
    ("cached_input_tokens", "UInt64", Ty::U64),
    ("reasoning_tokens", "UInt64", Ty::U64),
    ("total_tokens", "UInt64", Ty::U64),
    ("tokens_estimated", "UInt8", Ty::U8),
    ("status", "LowCardinality(String)", Ty::Str),
    ("finish_reason", "LowCardinality(String)", Ty::Str),
    ("latency_ms", "Nullable(UInt32)", Ty::NullableU32),
    ("cost_usd", "Float64", Ty::F64),
    ("wasted_tokens", "UInt64", Ty::U64),
    ("waste_reason", "LowCardinality(String)", Ty::Str),
    ("src_partition", "Int32", Ty::I32),
    ("src_offset", "Int64", Ty::I64),
    ("fp_prompt", "UInt64", Ty::U64),
    ("fp_prompt_sim", "UInt64", Ty::U64),
    ("fp_output_sim", "UInt64", Ty::U64),
    ("fp_flags", "UInt8", Ty::U8),
    ("fp_prompt_mh", "String", Ty::Str),
    ("fp_output_mh", "String", Ty::Str),
];

pub const HOURLY: &[Column] = &[
    ("src_partition", "Int32", Ty::I32),
    ("hour", "DateTime('UTC')", Ty::DateTimeS),
    ("user", "String", Ty::Str),
    ("model", "LowCardinality(String)", Ty::Str),
    ("requests", "UInt64", Ty::U64),
    ("input_tokens", "UInt64", Ty::U64),
    ("output_tokens", "UInt64", Ty::U64),
    ("cached_input_tokens", "UInt64", Ty::U64),
    ("total_tokens", "UInt64", Ty::U64),
    ("wasted_tokens", "UInt64", Ty::U64),
    ("cost_usd", "Float64", Ty::F64),
    ("version", "UInt64", Ty::U64),
];

pub const WEEKLY: &[Column] = &[
    ("src_partition", "Int32", Ty::I32),
    ("week_start", "Date", Ty::Date),
    ("user", "String", Ty::Str),
    ("team", "LowCardinality(String)", Ty::Str),
    ("team_ts", "DateTime64(3, 'UTC')", Ty::DateTime64Ms),
    ("requests", "UInt64", Ty::U64),
    ("input_tokens", "UInt64", Ty::U64),
    ("output_tokens", "UInt64", Ty::U64),
    ("total_tokens", "UInt64", Ty::U64),
    ("wasted_tokens", "UInt64", Ty::U64),
    ("cost_usd", "Float64", Ty::F64),
    ("final", "UInt8", Ty::U8),
    ("version", "UInt64", Ty::U64),
];

pub const WASTE: &[Column] = &[
    ("src_partition", "Int32", Ty::I32),
    ("week_start", "Date", Ty::Date),
    ("user", "String", Ty::Str),
    ("reason", "LowCardinality(String)", Ty::Str),
    ("requests", "UInt64", Ty::U64),
    ("wasted_tokens", "UInt64", Ty::U64),
    ("version", "UInt64", Ty::U64),
];

/// A table a batch writes in RowBinary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Events,
    Hourly,
    Weekly,
    Waste,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Events, Table::Hourly, Table::Weekly, Table::Waste];

    /// The name the Python `Batch` uses (its attribute and `row_binary` argument).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Hourly => "hourly",
            Table::Weekly => "weekly",
            Table::Waste => "waste",
        }
    }

    pub const fn columns(self) -> &'static [Column] {
        match self {
            Table::Events => EVENTS,
            Table::Hourly => HOURLY,
            Table::Weekly => WEEKLY,
            Table::Waste => WASTE,
        }
    }

    pub fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The tables a batch writes in RowBinary, by the names the Python `Batch` uses.
pub const TABLES: [(&str, &[Column]); 4] = [
    (Table::Events.name(), EVENTS),
    (Table::Hourly.name(), HOURLY),
    (Table::Weekly.name(), WEEKLY),
    (Table::Waste.name(), WASTE),
];

/// A batch's rows as RowBinary, one block per [`Table`] (in `Table::ALL` order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Blocks([Block; 4]);

impl Blocks {
    pub fn of(out: &BatchOut<'_>) -> Blocks {
        Blocks([
            events(&out.events),
            hourly(&out.hourly, out.version),
            weekly(&out.weekly, out.version),
            waste(&out.waste, out.version),
        ])
    }

    pub fn get(&self, table: Table) -> &Block {
        &self.0[table as usize]
    }
}

/// One table's rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Block {
    pub rows: usize,
    pub bytes: Vec<u8>,
}

struct W<'b>(&'b mut Vec<u8>);

impl W<'_> {
    fn str(&mut self, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(b);
                break;
            }
            self.0.push(b | 0x80);
        }
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// DateTime from epoch ms (whole seconds; clamped to the type's range).
    fn datetime_s(&mut self, ms: i64) {
        let s = ms.div_euclid(1000).clamp(0, i64::from(u32::MAX));
        self.0.extend_from_slice(&(s as u32).to_le_bytes());
    }
    /// Date from epoch ms. The Monday before 1970-01-05 is 1969-12-29, which
    /// Date cannot hold: clamped to day 0 rather than failing the insert.
    fn date(&mut self, ms: i64) {
        let d = ms.div_euclid(MS_PER_DAY).clamp(0, i64::from(u16::MAX));
        self.0.extend_from_slice(&(d as u16).to_le_bytes());
    }
    fn nullable_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.0.push(1),
            Some(x) => {
                self.0.push(0);
                self.0.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn block<T>(rows: &[T], per_row: usize, mut write: impl FnMut(&mut W<'_>, &T)) -> Block {
    let mut bytes = Vec::with_capacity(rows.len() * per_row);
    let mut w = W(&mut bytes);
    for r in rows {
        write(&mut w, r);
    }
    Block {
        rows: rows.len(),
        bytes,
    }
}

/// `_events` rows, in [`EVENTS`] order.
pub fn events(rows: &[EventRow<'_>]) -> Block {
    block(rows, 256, |w, r| {
        let e = &r.event;
        w.str(&e.event_id);
        w.i64(e.ts);
        w.str(&e.user);
        w.str(&e.team);
        w.str(&e.app);
        w.str(&e.model);
        w.str(&e.provider);
        w.str(&e.session_id);
        w.u64(r.input_tokens);
        w.u64(r.output_tokens);
        w.u64(r.cached_input_tokens);
        w.u64(r.reasoning_tokens);
        w.u64(r.total_tokens());
        w.u8(u8::from(r.tokens_estimated));
        w.str(if e.is_error { "error" } else { "ok" });
        w.str(&e.finish_reason);
        w.nullable_u32(e.latency_ms);
        w.f64(r.cost_usd);
        w.u64(r.wasted_tokens);
        w.str(WasteReason::name(r.waste_reason));
        w.i32(r.partition);
        w.i64(r.offset);
        let (prompt, prompt_sim, output_sim, flags) = r.fingerprint.stored();
        w.u64(prompt);
        w.u64(prompt_sim);
        w.u64(output_sim);
        w.u8(flags);
        let (prompt_mh, output_mh) = r.fingerprint.stored_sketches();
        w.str(&prompt_mh);
        w.str(&output_mh);
    })
}

/// `_hourly` rows, in [`HOURLY`] order.
pub fn hourly(rows: &[HourlyRow], version: u64) -> Block {
    block(rows, 96, |w, r| {
        let c = &r.cell;
        w.i32(r.partition);
        w.datetime_s(r.hour);
        w.str(&r.user);
        w.str(&r.model);
        w.u64(c.requests);
        w.u64(c.input_tokens);
        w.u64(c.output_tokens);
        w.u64(c.cached_input_tokens);
        w.u64(c.input_tokens + c.output_tokens);
        w.u64(c.wasted_tokens);
        w.f64(c.cost_usd);
        w.u64(version);
    })
}

/// `_weekly` rows, in [`WEEKLY`] order.
pub fn weekly(rows: &[WeeklyRow], version: u64) -> Block {
    block(rows, 96, |w, r| {
        let c = &r.cell;
        w.i32(r.partition);
        w.date(r.week_start);
        w.str(&r.user);
        w.str(&c.team);
        w.i64(c.team_ts);
        w.u64(c.requests);
        w.u64(c.input_tokens);
        w.u64(c.output_tokens);
        w.u64(c.input_tokens + c.output_tokens);
        w.u64(c.wasted_tokens);
        w.f64(c.cost_usd);
        w.u8(u8::from(r.closed));
        w.u64(version);
    })
}

/// `_waste` rows, in [`WASTE`] order.
pub fn waste(rows: &[WasteRow], version: u64) -> Block {
    block(rows, 64, |w, r| {
        w.i32(r.partition);
        w.date(r.week_start);
        w.str(&r.user);
        w.str(&r.reason);
        w.u64(r.cell.requests);
        w.u64(r.cell.wasted_tokens);
        w.u64(version);
    })
}

/// One decoded column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values<'b> {
    Str(Vec<&'b str>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Float(Vec<f64>),
    OptUInt(Vec<Option<u64>>),
}

/// A block that does not match its column list (a bug, never bad input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

struct R<'b> {
    buf: &'b [u8],
    at: usize,
}

impl<'b> R<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let end =
            end.ok_or_else(|| DecodeError(format!("block ends early at byte {}", self.at)))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn str(&mut self) -> Result<&'b str, DecodeError> {
        let (mut n, mut shift) = (0u64, 0u32);
        loop {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(DecodeError("bad string length".into()));
            }
        }
        let len = usize::try_from(n).map_err(|_| DecodeError("string too long".into()))?;
        std::str::from_utf8(self.take(len)?).map_err(|e| DecodeError(e.to_string()))
    }
}

/// Columns of a block, in `columns` order; date/time columns as epoch ms.
pub fn decode<'b>(
    columns: &[Column],
    block: &'b Block,
) -> Result<Vec<(&'static str, Values<'b>)>, DecodeError> {
    let n = block.rows;
    let mut out: Vec<(&'static str, Values<'b>)> = columns
        .iter()
        .map(|(name, _, ty)| {
            let v = match ty {
                Ty::Str => Values::Str(Vec::with_capacity(n)),
                Ty::U8 | Ty::U32 | Ty::U64 => Values::UInt(Vec::with_capacity(n)),
                Ty::I32 | Ty::I64 | Ty::DateTime64Ms | Ty::DateTimeS | Ty::Date => {
                    Values::Int(Vec::with_capacity(n))
                }
                Ty::F64 => Values::Float(Vec::with_capacity(n)),
                Ty::NullableU32 => Values::OptUInt(Vec::with_capacity(n)),
            };
            (*name, v)
        })
        .collect();
    let mut r = R {
        buf: &block.bytes,
        at: 0,
    };
    for _ in 0..n {
        for ((_, _, ty), (_, values)) in columns.iter().zip(out.iter_mut()) {
            match (ty, values) {
                (Ty::Str, Values::Str(v)) => v.push(r.str()?),
                (Ty::U8, Values::UInt(v)) => v.push(u64::from(r.take(1)?[0])),
                (Ty::U32, Values::UInt(v)) => v.push(u64::from(u32::from_le_bytes(r.fixed()?))),
                (Ty::U64, Values::UInt(v)) => v.push(u64::from_le_bytes(r.fixed()?)),
                (Ty::I32, Values::Int(v)) => v.push(i64::from(i32::from_le_bytes(r.fixed()?))),
                (Ty::I64 | Ty::DateTime64Ms, Values::Int(v)) => {
                    v.push(i64::from_le_bytes(r.fixed()?));
                }
                (Ty::DateTimeS, Values::Int(v)) => {
                    v.push(i64::from(u32::from_le_bytes(r.fixed()?)) * 1000);
                }
                (Ty::Date, Values::Int(v)) => {
                    v.push(i64::from(u16::from_le_bytes(r.fixed()?)) * MS_PER_DAY);
                }
                (Ty::F64, Values::Float(v)) => v.push(f64::from_le_bytes(r.fixed()?)),
                (Ty::NullableU32, Values::OptUInt(v)) => {
                    let null = r.take(1)?[0];
                    v.push(if null == 0 {
                        Some(u64::from(u32::from_le_bytes(r.fixed()?)))
                    } else {
                        None
                    });
                }
                _ => return Err(DecodeError("column kinds out of step".into())),
            }
        }
    }
    if r.at != block.bytes.len() {
        return Err(DecodeError(format!(
            "{} bytes left after {n} rows",
            block.bytes.len() - r.at
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{HourlyCell, WeeklyCell};

    #[test]
    fn string_lengths_are_leb128() {
        let mut v = Vec::new();
        W(&mut v).str(&"x".repeat(300));
        assert_eq!(&v[..2], &[0xac, 0x02]);
        assert_eq!(v.len(), 302);
        let b = Block { rows: 1, bytes: v };
        let cols: &[Column] = &[("s", "String", Ty::Str)];
        assert_eq!(
            decode(cols, &b).unwrap()[0].1,
            Values::Str(vec![&*"x".repeat(300)])
        );
    }

    #[test]
    fn hourly_round_trip_and_exact_bytes() {
        let mut cell = HourlyCell::default();
        (cell.requests, cell.input_tokens, cell.output_tokens) = (2, 10, 5);
        (cell.cached_input_tokens, cell.wasted_tokens, cell.cost_usd) = (1, 3, 0.5);
        let rows = vec![HourlyRow {
            partition: 7,
            hour: 3_600_000,
            user: "ann".into(),
            model: "m".into(),
            cell,
        }];
        let b = hourly(&rows, 9);
        let mut want = Vec::new();
        want.extend_from_slice(&7i32.to_le_bytes());
        want.extend_from_slice(&3600u32.to_le_bytes());
        want.extend_from_slice(b"\x03ann\x01m");
        for x in [2u64, 10, 5, 1, 15, 3] {
            want.extend_from_slice(&x.to_le_bytes());
        }
        want.extend_from_slice(&0.5f64.to_le_bytes());
        want.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(b.bytes, want);
        let cols = decode(HOURLY, &b).unwrap();
        assert_eq!(cols[1], ("hour", Values::Int(vec![3_600_000])));
        assert_eq!(cols[8], ("total_tokens", Values::UInt(vec![15])));
    }

    #[test]
    fn dates_clamp_to_the_type() {
        let rows = vec![WeeklyRow {
            partition: 0,
            week_start: -3 * MS_PER_DAY,
            user: "u".into(),
            cell: WeeklyCell::default(),
            closed: true,
        }];
        let b = weekly(&rows, 1);
        let cols = decode(WEEKLY, &b).unwrap();
        assert_eq!(cols[1].1, Values::Int(vec![0]));
        assert_eq!(cols[11].1, Values::UInt(vec![1]));
    }

    #[test]
    fn truncated_or_long_blocks_are_errors() {
        let rows = vec![WasteRow {
            partition: 1,
            week_start: 0,
            user: "u".into(),
            reason: "r".into(),
            cell: Default::default(),
        }];
        let mut b = waste(&rows, 1);
        b.bytes.pop();
        assert!(decode(WASTE, &b).is_err());
        b.bytes.extend_from_slice(&[0, 0]);
        assert!(decode(WASTE, &b).is_err());
    }

    #[test]
    fn column_lists_are_distinct_names() {
        for (_, cols) in TABLES {
            let mut names: Vec<_> = cols.iter().map(|c| c.0).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), cols.len());
        }
    }
}
