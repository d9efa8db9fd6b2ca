//! The Python binding (`tokenlord._core`): the only file that knows PyO3.
//! One call per batch; the GIL is released while the core works; results go
//! back as columns (dicts of lists), never as one dict per row.

use std::collections::HashMap as StdHashMap;
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList};
use rayon::prelude::*;

use crate::batch::{
    BatchOut, Config, Core as RustCore, Format, HourlyRow, Message, Price, Rejection,
    StoredColumns, WasteRow, WeeklyRow,
};
use crate::error::CoreError;
use crate::fingerprint::{Fingerprint, FingerprintKey};
use crate::guard::Limits;
use crate::outcome::parse_outcomes;
use crate::redact::redact as redact_text;
use crate::rowbinary::{self, Block, Blocks, Table, Values};
use crate::tokenize::{load_dir, Encoding, EncodingMap, DEFAULT_RULES};
use crate::waste::WasteConfig;

create_exception!(
    _core,
    TokenlordError,
    PyException,
    "Base class of every error raised by the native core."
);
create_exception!(
    _core,
    ConfigError,
    TokenlordError,
    "A bad setting handed to the core."
);
create_exception!(
    _core,
    InputError,
    TokenlordError,
    "Arguments of one call do not fit together."
);

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        match e {
            CoreError::Config(_) => ConfigError::new_err(e.to_string()),
            CoreError::Input(_) => InputError::new_err(e.to_string()),
        }
    }
}

/// Result of one call; see `_core.pyi`. The rows of `events`, `hourly`,
/// `weekly` and `waste` are held as the RowBinary blocks the store inserts;
/// their column views are made on first access (events decoded from its
/// block; the others from the rows, whose times the Date/DateTime types round).
#[pyclass(module = "tokenlord._core", frozen)]
struct Batch {
    blocks: Blocks,
    views: [PyOnceLock<Py<PyDict>>; 4],
    hourly: Vec<HourlyRow>,
    weekly: Vec<WeeklyRow>,
    waste: Vec<WasteRow>,
    #[pyo3(get)]
    rejected: Py<PyDict>,
    #[pyo3(get)]
    duplicates: u64,
    #[pyo3(get)]
    accepted: usize,
    #[pyo3(get)]
    watermarks: Py<PyDict>,
    #[pyo3(get)]
    version: u64,
    #[pyo3(get)]
    progress: Py<PyDict>,
    #[pyo3(get)]
    replayed: u64,
    #[pyo3(get)]
    skipped_spans: u64,
}

fn table_named(name: &str) -> PyResult<Table> {
    Table::named(name).ok_or_else(|| {
        InputError::new_err(format!(
            "no RowBinary table {name:?} (events, hourly, weekly, waste)"
        ))
    })
}

impl Batch {
    fn view(&self, py: Python<'_>, t: Table) -> PyResult<Py<PyDict>> {
        let d = self.views[t as usize].get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            let d = PyDict::new(py);
            match t {
                Table::Events => events_view(&d, self.blocks.get(Table::Events))?,
                Table::Hourly => hourly_view(&d, &self.hourly, self.version)?,
                Table::Weekly => weekly_view(&d, &self.weekly, self.version)?,
                Table::Waste => waste_view(&d, &self.waste, self.version)?,
            }
            Ok(d.unbind())
        })?;
        Ok(d.clone_ref(py))
    }
}

fn events_view(d: &Bound<'_, PyDict>, block: &Block) -> PyResult<()> {
    let cols = rowbinary::decode(rowbinary::EVENTS, block)
        .map_err(|e| PyException::new_err(format!("RowBinary block: {}", e.0)))?;
    for (name, values) in cols {
        match values {
            Values::Str(v) => col(d, name, v)?,
            Values::Int(v) => col(d, name, v)?,
            Values::UInt(v) => col(d, name, v)?,
            Values::Float(v) => col(d, name, v)?,
            Values::OptUInt(v) => col(d, name, v)?,
        }
    }
    Ok(())
}

fn hourly_view(hr: &Bound<'_, PyDict>, h: &[HourlyRow], version: u64) -> PyResult<()> {
    col(hr, "src_partition", h.iter().map(|r| r.partition))?;
    col(hr, "hour", h.iter().map(|r| r.hour))?;
    col(hr, "user", h.iter().map(|r| r.user.as_str()))?;
    col(hr, "model", h.iter().map(|r| r.model.as_str()))?;
    col(hr, "requests", h.iter().map(|r| r.cell.requests))?;
    col(hr, "input_tokens", h.iter().map(|r| r.cell.input_tokens))?;
    col(hr, "output_tokens", h.iter().map(|r| r.cell.output_tokens))?;
    col(
        hr,
        "cached_input_tokens",
        h.iter().map(|r| r.cell.cached_input_tokens),
    )?;
    col(
        hr,
        "total_tokens",
        h.iter().map(|r| r.cell.input_tokens + r.cell.output_tokens),
    )?;
    col(hr, "wasted_tokens", h.iter().map(|r| r.cell.wasted_tokens))?;
    col(hr, "cost_usd", h.iter().map(|r| r.cell.cost_usd))?;
    col(hr, "version", h.iter().map(|_| version))
}

fn weekly_view(wk: &Bound<'_, PyDict>, w: &[WeeklyRow], version: u64) -> PyResult<()> {
    col(wk, "src_partition", w.iter().map(|r| r.partition))?;
    col(wk, "week_start", w.iter().map(|r| r.week_start))?;
    col(wk, "user", w.iter().map(|r| r.user.as_str()))?;
    col(wk, "team", w.iter().map(|r| r.cell.team.as_str()))?;
    col(wk, "team_ts", w.iter().map(|r| r.cell.team_ts))?;
    col(wk, "requests", w.iter().map(|r| r.cell.requests))?;
    col(wk, "input_tokens", w.iter().map(|r| r.cell.input_tokens))?;
    col(wk, "output_tokens", w.iter().map(|r| r.cell.output_tokens))?;
    col(
        wk,
        "total_tokens",
        w.iter().map(|r| r.cell.input_tokens + r.cell.output_tokens),
    )?;
    col(wk, "wasted_tokens", w.iter().map(|r| r.cell.wasted_tokens))?;
    col(wk, "cost_usd", w.iter().map(|r| r.cell.cost_usd))?;
    col(wk, "final", w.iter().map(|r| u8::from(r.closed)))?;
    col(wk, "version", w.iter().map(|_| version))
}

fn waste_view(ws: &Bound<'_, PyDict>, x: &[WasteRow], version: u64) -> PyResult<()> {
    col(ws, "src_partition", x.iter().map(|r| r.partition))?;
    col(ws, "week_start", x.iter().map(|r| r.week_start))?;
    col(ws, "user", x.iter().map(|r| r.user.as_str()))?;
    col(ws, "reason", x.iter().map(|r| r.reason.as_str()))?;
    col(ws, "requests", x.iter().map(|r| r.cell.requests))?;
    col(ws, "wasted_tokens", x.iter().map(|r| r.cell.wasted_tokens))?;
    col(ws, "version", x.iter().map(|_| version))
}

#[pymethods]
impl Batch {
    #[getter]
    fn events(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.view(py, Table::Events)
    }

    #[getter]
    fn hourly(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.view(py, Table::Hourly)
    }

    #[getter]
    fn weekly(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.view(py, Table::Weekly)
    }

    #[getter]
    fn waste(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.view(py, Table::Waste)
    }

    /// `(rows, RowBinary bytes)` of one table, in `ROW_BINARY_COLUMNS[table]` order.
    fn row_binary<'py>(
        &self,
        py: Python<'py>,
        table: &str,
    ) -> PyResult<(usize, Bound<'py, PyBytes>)> {
        let b = self.blocks.get(table_named(table)?);
        Ok((b.rows, PyBytes::new(py, &b.bytes)))
    }

    /// Rows per table (`events`, `hourly`, `weekly`, `waste`).
    #[getter]
    fn rows(&self) -> StdHashMap<&'static str, usize> {
        Table::ALL
            .into_iter()
            .map(|t| (t.name(), self.blocks.get(t).rows))
            .collect()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Batch(accepted={}, rejected={}, duplicates={}, hourly={}, weekly={}, version={})",
            self.accepted,
            self.rejected
                .bind(py)
                .get_item("reason")
                .ok()
                .flatten()
                .map_or(0, |l| l.len().unwrap_or(0)),
            self.duplicates,
            self.blocks.get(Table::Hourly).rows,
            self.blocks.get(Table::Weekly).rows,
            self.version,
        )
    }
}

fn col<'py, T, I>(d: &Bound<'py, PyDict>, name: &str, items: I) -> PyResult<()>
where
    I: IntoIterator<Item = T>,
    I::IntoIter: ExactSizeIterator,
    T: IntoPyObject<'py>,
{
    d.set_item(name, PyList::new(d.py(), items)?)
}

fn to_batch(py: Python<'_>, out: BatchOut<'_>, blocks: Blocks) -> PyResult<Batch> {
    let rj = rejected_columns(py, &out.rejected)?;
    let wm = PyDict::new(py);
    for (p, t) in &out.watermarks {
        wm.set_item(p, t)?;
    }
    let progress = PyDict::new(py);
    for (p, next) in &out.progress {
        progress.set_item(p, next)?;
    }
    Ok(Batch {
        blocks,
        views: std::array::from_fn(|_| PyOnceLock::new()),
        hourly: out.hourly,
        weekly: out.weekly,
        waste: out.waste,
        rejected: rj.unbind(),
        duplicates: out.duplicates,
        accepted: out.events.len(),
        watermarks: wm.unbind(),
        version: out.version,
        progress: progress.unbind(),
        replayed: out.replayed,
        skipped_spans: out.skipped_spans,
    })
}

fn rejected_columns<'py>(py: Python<'py>, r: &[Rejection<'_>]) -> PyResult<Bound<'py, PyDict>> {
    let rj = PyDict::new(py);
    col(&rj, "src_partition", r.iter().map(|r| r.partition))?;
    col(&rj, "src_offset", r.iter().map(|r| r.offset))?;
    col(&rj, "idx", r.iter().map(|r| r.idx))?;
    col(&rj, "reason", r.iter().map(|r| r.reason.to_string()))?;
    col(&rj, "raw", r.iter().map(|r| PyBytes::new(py, r.raw)))?;
    Ok(rj)
}

/// The messages of one call; the three columns must have the same length.
fn messages<'a>(
    partitions: &[i32],
    offsets: &[i64],
    values: &'a [PyBackedBytes],
) -> PyResult<Vec<Message<'a>>> {
    if partitions.len() != offsets.len() || offsets.len() != values.len() {
        return Err(CoreError::Input(format!(
            "partitions, offsets and values differ in length ({}, {}, {})",
            partitions.len(),
            offsets.len(),
            values.len()
        ))
        .into());
    }
    Ok(partitions
        .iter()
        .zip(offsets)
        .zip(values)
        .map(|((p, o), v)| Message {
            partition: *p,
            offset: *o,
            value: v.as_ref(),
        })
        .collect())
}

/// Waste thresholds from `{name: int}` (missing names keep their defaults).
/// A restore's events: a dict of columns (`StoredColumns`; a missing column is an `InputError`).
fn stored_columns(events: &Bound<'_, PyDict>) -> PyResult<StoredColumns> {
    let cols: StoredColumns = events.extract().map_err(|e: PyErr| {
        if e.is_instance_of::<PyKeyError>(events.py()) {
            InputError::new_err(format!(
                "restore: events column {} is missing",
                e.value(events.py())
            ))
        } else {
            e
        }
    })?;
    Ok(cols.checked()?)
}

/// The stream state of the partitions one worker owns.
#[pyclass(module = "tokenlord._core")]
struct Core {
    inner: RustCore,
}

fn encoding_map(
    rules: Option<Vec<(String, String)>>,
    fallback: &str,
    tokenizer_dir: Option<PathBuf>,
) -> Result<EncodingMap, CoreError> {
    if let Some(dir) = tokenizer_dir {
        load_dir(&dir)?;
    }
    match rules {
        Some(r) => EncodingMap::new(&r, fallback),
        None => {
            let default = EncodingMap::default();
            if fallback == "o200k_base" {
                Ok(default)
            } else {
                Err(CoreError::Config(
                    "a custom fallback_encoding needs model_encodings too".into(),
                ))
            }
        }
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (*, grace_ms=3_600_000, dedupe_horizon_ms=86_400_000, future_tolerance_ms=600_000,
                        max_message_bytes=1_048_576, prices=None, model_encodings=None,
                        fallback_encoding="o200k_base", tokenizer_dir=None, waste=None,
                        fingerprint_secret=None, max_elements_per_message=10_000,
                        max_rejections_per_message=100, max_rejections_per_batch=10_000,
                        fault_poison=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        grace_ms: i64,
        dedupe_horizon_ms: i64,
        future_tolerance_ms: i64,
        max_message_bytes: usize,
        prices: Option<StdHashMap<String, (f64, f64, f64)>>,
        model_encodings: Option<Vec<(String, String)>>,
        fallback_encoding: &str,
        tokenizer_dir: Option<PathBuf>,
        waste: Option<StdHashMap<String, i64>>,
        fingerprint_secret: Option<PyBackedBytes>,
        max_elements_per_message: usize,
        max_rejections_per_message: usize,
        max_rejections_per_batch: usize,
        fault_poison: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let mut prices: Vec<(String, Price)> = prices
            .unwrap_or_default()
            .into_iter()
            .map(|(model, p)| (model, Price::from(p)))
            .collect();
        prices.sort_by(|a, b| a.0.cmp(&b.0));
        let cfg = Config {
            grace_ms,
            dedupe_horizon_ms,
            future_tolerance_ms,
            max_message_bytes,
            prices,
            encodings: encoding_map(model_encodings, fallback_encoding, tokenizer_dir)?,
            waste: WasteConfig::from_named(waste.unwrap_or_default())?,
            fingerprint_key: FingerprintKey::derive(fingerprint_secret.as_deref().unwrap_or(b"")),
            limits: Limits {
                max_elements: max_elements_per_message,
                max_rejections_per_message,
                max_rejections_per_batch,
            },
            fault_poison: fault_poison.unwrap_or_default(),
        };
        Ok(Core {
            inner: RustCore::new(cfg)?,
        })
    }

    /// Processes one batch of Kafka messages (GIL released while working):
    /// usage events, or with `otlp=True` OTLP trace records (docs/gateways.md).
    #[pyo3(signature = (partitions, offsets, values, now_ms, *, otlp=false))]
    fn process(
        &mut self,
        py: Python<'_>,
        partitions: Vec<i32>,
        offsets: Vec<i64>,
        values: Vec<PyBackedBytes>,
        now_ms: i64,
        otlp: bool,
    ) -> PyResult<Batch> {
        let msgs = messages(&partitions, &offsets, &values)?;
        let inner = &mut self.inner;
        let format = if otlp { Format::Otlp } else { Format::Events };
        let (out, blocks) = py.detach(|| {
            let out = inner.process_as(format, &msgs, now_ms);
            let b = Blocks::of(&out);
            (out, b)
        });
        to_batch(py, out, blocks)
    }

    /// Validates a batch of outcome messages (`tokenlord.outcomes`):
    /// `(outcomes, rejected)` as columns. No state: the store joins them.
    fn outcomes(
        &self,
        py: Python<'_>,
        partitions: Vec<i32>,
        offsets: Vec<i64>,
        values: Vec<PyBackedBytes>,
        now_ms: i64,
    ) -> PyResult<(Py<PyDict>, Py<PyDict>)> {
        let msgs = messages(&partitions, &offsets, &values)?;
        let cfg = self.inner.config();
        let (max, future, limits) = (cfg.max_message_bytes, cfg.future_tolerance_ms, cfg.limits);
        let out = py.detach(|| parse_outcomes(&msgs, max, &limits, now_ms, future));
        let oc = PyDict::new(py);
        let o = &out.outcomes;
        col(&oc, "event_id", o.iter().map(|r| r.event_id.as_str()))?;
        col(&oc, "session_id", o.iter().map(|r| r.session_id.as_str()))?;
        col(&oc, "ts", o.iter().map(|r| r.ts))?;
        col(&oc, "user", o.iter().map(|r| r.user.as_str()))?;
        col(&oc, "outcome", o.iter().map(|r| r.outcome.as_str()))?;
        col(&oc, "value", o.iter().map(|r| r.value))?;
        col(&oc, "src_partition", o.iter().map(|r| r.partition))?;
        col(&oc, "src_offset", o.iter().map(|r| r.offset))?;
        col(&oc, "idx", o.iter().map(|r| r.idx))?;
        Ok((oc.unbind(), rejected_columns(py, &out.rejected)?.unbind()))
    }

    /// Rebuilds a partition's state from its stored events; restates its open cells.
    /// `next_offset`: the stored progress; messages below it are skipped as applied.
    #[pyo3(signature = (partition, watermark_ms, min_version, events, next_offset=None))]
    fn restore(
        &mut self,
        py: Python<'_>,
        partition: i32,
        watermark_ms: Option<i64>,
        min_version: u64,
        events: &Bound<'_, PyDict>,
        next_offset: Option<i64>,
    ) -> PyResult<Batch> {
        let cols = stored_columns(events)?;
        let inner = &mut self.inner;
        let (out, blocks) = py.detach(|| {
            let out = inner.restore(
                partition,
                watermark_ms,
                min_version,
                &cols.events(),
                next_offset,
            );
            let b = Blocks::of(&out);
            (out, b)
        });
        to_batch(py, out, blocks)
    }

    /// A restore in chunks, for partitions with many stored events: begin,
    /// events (any number of calls, in Kafka offset order), end.
    #[pyo3(signature = (partition, watermark_ms, min_version, next_offset=None))]
    fn restore_begin(
        &mut self,
        partition: i32,
        watermark_ms: Option<i64>,
        min_version: u64,
        next_offset: Option<i64>,
    ) {
        self.inner
            .restore_begin(partition, watermark_ms, min_version, next_offset);
    }

    fn restore_events(
        &mut self,
        py: Python<'_>,
        partition: i32,
        events: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let cols = stored_columns(events)?;
        let inner = &mut self.inner;
        py.detach(|| inner.restore_events(partition, &cols.events()));
        Ok(())
    }

    fn restore_end(&mut self, py: Python<'_>, partition: i32) -> PyResult<Batch> {
        let inner = &mut self.inner;
        let (out, blocks) = py.detach(|| {
            let out = inner.restore_end(partition);
            let b = Blocks::of(&out);
            (out, b)
        });
        to_batch(py, out, blocks)
    }

    /// Forgets a partition (revoked from this worker).
    fn drop_partition(&mut self, partition: i32) {
        self.inner.drop_partition(partition);
    }

    fn partitions(&self) -> Vec<i32> {
        self.inner.partitions()
    }

    fn watermark(&self, partition: i32) -> Option<i64> {
        self.inner.watermark(partition)
    }

    fn state_size(&self) -> StdHashMap<&'static str, usize> {
        let s = self.inner.state_size();
        StdHashMap::from([
            ("partitions", s.partitions),
            ("open_weeks", s.open_weeks),
            ("hourly_cells", s.hourly_cells),
            ("weekly_cells", s.weekly_cells),
            ("waste_cells", s.waste_cells),
            ("dedupe_ids", s.dedupe_ids),
            ("waste_users", s.waste_users),
            ("waste_entries", s.waste_entries),
        ])
    }
}

/// Token counts of `texts` with `encoding` (GIL released, parallel for big batches).
#[pyfunction]
#[pyo3(signature = (texts, encoding, tokenizer_dir=None))]
fn count_tokens(
    py: Python<'_>,
    texts: Vec<String>,
    encoding: &str,
    tokenizer_dir: Option<PathBuf>,
) -> PyResult<Vec<u64>> {
    if let Some(dir) = tokenizer_dir {
        load_dir(&dir)?;
    }
    let enc = Encoding::from_name(encoding)?;
    Ok(py.detach(|| {
        let total: usize = texts.iter().map(String::len).sum();
        if texts.len() > 1 && total > 64 * 1024 {
            texts.par_iter().map(|t| enc.count(t)).collect()
        } else {
            texts.iter().map(|t| enc.count(t)).collect()
        }
    }))
}

/// The `fingerprint` field (JSON text) of each (prompt, output) pair, keyed
/// by `secret` (GIL released, parallel for big batches).
#[pyfunction]
fn fingerprints(
    py: Python<'_>,
    pairs: Vec<(Option<PyBackedStr>, Option<PyBackedStr>)>,
    secret: PyBackedBytes,
) -> Vec<String> {
    py.detach(|| {
        let key = FingerprintKey::derive(&secret);
        let one = |(p, o): &(Option<PyBackedStr>, Option<PyBackedStr>)| {
            Fingerprint::of(&key, p.as_deref(), o.as_deref()).to_json(&key)
        };
        let total: usize = pairs
            .iter()
            .map(|(p, o)| p.as_ref().map_or(0, |t| t.len()) + o.as_ref().map_or(0, |t| t.len()))
            .sum();
        if pairs.len() > 1 && total > 64 * 1024 {
            pairs.par_iter().map(one).collect()
        } else {
            pairs.iter().map(one).collect()
        }
    })
}

/// The public id of the key derived from `secret` (the `"key"` member).
#[pyfunction]
fn fingerprint_key_id(secret: PyBackedBytes) -> String {
    FingerprintKey::derive(&secret).id_hex()
}

/// What `rejected.raw` stores of each value: its text redacted, at most
/// `limit` bytes (one call per batch, GIL released).
#[pyfunction]
fn redact<'py>(
    py: Python<'py>,
    values: Vec<PyBackedBytes>,
    limit: usize,
) -> Vec<Bound<'py, PyBytes>> {
    let out: Vec<Vec<u8>> = py.detach(|| values.iter().map(|v| redact_text(v, limit)).collect());
    out.iter().map(|v| PyBytes::new(py, v)).collect()
}

/// `(encoding, is_fallback)` for a model under the given rules.
#[pyfunction]
#[pyo3(signature = (model, model_encodings=None, fallback_encoding="o200k_base", tokenizer_dir=None))]
fn encoding_for(
    model: &str,
    model_encodings: Option<Vec<(String, String)>>,
    fallback_encoding: &str,
    tokenizer_dir: Option<PathBuf>,
) -> PyResult<(&'static str, bool)> {
    let (enc, fallback) =
        encoding_map(model_encodings, fallback_encoding, tokenizer_dir)?.lookup(model);
    Ok((enc.name(), fallback))
}

/// Names of the encodings available: built-in, then loaded from files.
#[pyfunction]
fn encodings() -> Vec<&'static str> {
    Encoding::available().iter().map(|e| e.name()).collect()
}

/// Loads the tiktoken-format vocabularies of a directory (once per process);
/// returns the encoding names it provides.
#[pyfunction]
fn load_encodings(py: Python<'_>, tokenizer_dir: PathBuf) -> PyResult<Vec<String>> {
    Ok(py.detach(|| load_dir(&tokenizer_dir))?)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let rules: Vec<String> = DEFAULT_RULES
        .iter()
        .map(|(p, e)| format!("{p}={e}"))
        .collect();
    m.add("DEFAULT_MODEL_ENCODINGS", rules.join(","))?;
    m.add("TokenlordError", m.py().get_type::<TokenlordError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add_class::<Core>()?;
    m.add_class::<Batch>()?;
    let tables = PyDict::new(m.py());
    for (name, cols) in rowbinary::TABLES {
        let c: Vec<(&str, &str)> = cols.iter().map(|(n, t, _)| (*n, *t)).collect();
        tables.set_item(name, c)?;
    }
    m.add("ROW_BINARY_COLUMNS", tables)?;
    m.add_function(wrap_pyfunction!(count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(encoding_for, m)?)?;
    m.add_function(wrap_pyfunction!(encodings, m)?)?;
    m.add_function(wrap_pyfunction!(load_encodings, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprints, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprint_key_id, m)?)?;
    m.add_function(wrap_pyfunction!(redact, m)?)?;
    m.add("FINGERPRINT_VERSION", crate::fingerprint::VERSION)?;
    m.add(
        "WASTE_REASONS",
        crate::waste::WasteReason::ALL
            .map(crate::waste::WasteReason::as_str)
            .to_vec(),
    )?;
    let defaults: StdHashMap<&str, i64> = WasteConfig::default().named().into_iter().collect();
    m.add("WASTE_DEFAULTS", defaults)?;
    Ok(())
}
