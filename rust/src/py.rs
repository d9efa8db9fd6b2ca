//! The Python binding (`tokenlord._core`): the only file that knows PyO3.
//! One call per batch; the GIL is released while the core works; results go
//! back as columns (dicts of lists), never as one dict per row.

use std::collections::HashMap as StdHashMap;
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList};
use rayon::prelude::*;

use crate::core::{BatchOut, Config, Core as RustCore, Message, Rejection, StoredEvent};
use crate::error::CoreError;
use crate::outcome::parse_outcomes;
use crate::tokenize::{load_dir, Encoding, EncodingMap, DEFAULT_RULES};
use crate::waste::{Fingerprint, WasteConfig};
use crate::window::Contribution;

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

/// Columnar result of one call; see `_core.pyi` for the columns.
#[pyclass(module = "tokenlord._core", frozen)]
struct Batch {
    #[pyo3(get)]
    events: Py<PyDict>,
    #[pyo3(get)]
    hourly: Py<PyDict>,
    #[pyo3(get)]
    weekly: Py<PyDict>,
    #[pyo3(get)]
    waste: Py<PyDict>,
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
}

#[pymethods]
impl Batch {
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
            self.hourly
                .bind(py)
                .get_item("user")
                .ok()
                .flatten()
                .map_or(0, |l| l.len().unwrap_or(0)),
            self.weekly
                .bind(py)
                .get_item("user")
                .ok()
                .flatten()
                .map_or(0, |l| l.len().unwrap_or(0)),
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

fn to_batch(py: Python<'_>, out: &BatchOut<'_>) -> PyResult<Batch> {
    let ev = PyDict::new(py);
    let e = &out.events;
    col(&ev, "event_id", e.iter().map(|r| r.event.event_id.as_ref()))?;
    col(&ev, "ts", e.iter().map(|r| r.event.ts))?;
    col(&ev, "user", e.iter().map(|r| r.event.user.as_ref()))?;
    col(&ev, "team", e.iter().map(|r| r.event.team.as_ref()))?;
    col(&ev, "app", e.iter().map(|r| r.event.app.as_ref()))?;
    col(&ev, "model", e.iter().map(|r| r.event.model.as_ref()))?;
    col(&ev, "provider", e.iter().map(|r| r.event.provider.as_ref()))?;
    col(
        &ev,
        "session_id",
        e.iter().map(|r| r.event.session_id.as_ref()),
    )?;
    col(&ev, "input_tokens", e.iter().map(|r| r.input_tokens))?;
    col(&ev, "output_tokens", e.iter().map(|r| r.output_tokens))?;
    col(
        &ev,
        "cached_input_tokens",
        e.iter().map(|r| r.cached_input_tokens),
    )?;
    col(
        &ev,
        "reasoning_tokens",
        e.iter().map(|r| r.reasoning_tokens),
    )?;
    col(&ev, "total_tokens", e.iter().map(|r| r.total_tokens()))?;
    col(
        &ev,
        "tokens_estimated",
        e.iter().map(|r| u8::from(r.tokens_estimated)),
    )?;
    col(
        &ev,
        "status",
        e.iter()
            .map(|r| if r.event.is_error { "error" } else { "ok" }),
    )?;
    col(
        &ev,
        "finish_reason",
        e.iter().map(|r| r.event.finish_reason.as_ref()),
    )?;
    col(&ev, "latency_ms", e.iter().map(|r| r.event.latency_ms))?;
    col(&ev, "cost_usd", e.iter().map(|r| r.cost_usd))?;
    col(&ev, "wasted_tokens", e.iter().map(|r| r.wasted_tokens))?;
    col(&ev, "waste_reason", e.iter().map(|r| r.waste_reason))?;
    col(&ev, "fp_prompt", e.iter().map(|r| r.fingerprint.prompt))?;
    col(
        &ev,
        "fp_prompt_sim",
        e.iter().map(|r| r.fingerprint.prompt_sim),
    )?;
    col(
        &ev,
        "fp_output_sim",
        e.iter().map(|r| r.fingerprint.output_sim),
    )?;
    col(&ev, "fp_flags", e.iter().map(|r| fp_flags(&r.fingerprint)))?;
    col(&ev, "src_partition", e.iter().map(|r| r.partition))?;
    col(&ev, "src_offset", e.iter().map(|r| r.offset))?;

    let hr = PyDict::new(py);
    let h = &out.hourly;
    col(&hr, "src_partition", h.iter().map(|r| r.partition))?;
    col(&hr, "hour", h.iter().map(|r| r.hour))?;
    col(&hr, "user", h.iter().map(|r| r.user.as_str()))?;
    col(&hr, "model", h.iter().map(|r| r.model.as_str()))?;
    col(&hr, "requests", h.iter().map(|r| r.cell.requests))?;
    col(&hr, "input_tokens", h.iter().map(|r| r.cell.input_tokens))?;
    col(&hr, "output_tokens", h.iter().map(|r| r.cell.output_tokens))?;
    col(
        &hr,
        "cached_input_tokens",
        h.iter().map(|r| r.cell.cached_input_tokens),
    )?;
    col(
        &hr,
        "total_tokens",
        h.iter().map(|r| r.cell.input_tokens + r.cell.output_tokens),
    )?;
    col(&hr, "wasted_tokens", h.iter().map(|r| r.cell.wasted_tokens))?;
    col(&hr, "cost_usd", h.iter().map(|r| r.cell.cost_usd))?;
    col(&hr, "version", h.iter().map(|_| out.version))?;

    let wk = PyDict::new(py);
    let w = &out.weekly;
    col(&wk, "src_partition", w.iter().map(|r| r.partition))?;
    col(&wk, "week_start", w.iter().map(|r| r.week_start))?;
    col(&wk, "user", w.iter().map(|r| r.user.as_str()))?;
    col(&wk, "team", w.iter().map(|r| r.cell.team.as_str()))?;
    col(&wk, "team_ts", w.iter().map(|r| r.cell.team_ts))?;
    col(&wk, "requests", w.iter().map(|r| r.cell.requests))?;
    col(&wk, "input_tokens", w.iter().map(|r| r.cell.input_tokens))?;
    col(&wk, "output_tokens", w.iter().map(|r| r.cell.output_tokens))?;
    col(
        &wk,
        "total_tokens",
        w.iter().map(|r| r.cell.input_tokens + r.cell.output_tokens),
    )?;
    col(&wk, "wasted_tokens", w.iter().map(|r| r.cell.wasted_tokens))?;
    col(&wk, "cost_usd", w.iter().map(|r| r.cell.cost_usd))?;
    col(&wk, "final", w.iter().map(|r| u8::from(r.closed)))?;
    col(&wk, "version", w.iter().map(|_| out.version))?;

    let ws = PyDict::new(py);
    let x = &out.waste;
    col(&ws, "src_partition", x.iter().map(|r| r.partition))?;
    col(&ws, "week_start", x.iter().map(|r| r.week_start))?;
    col(&ws, "user", x.iter().map(|r| r.user.as_str()))?;
    col(&ws, "reason", x.iter().map(|r| r.reason.as_str()))?;
    col(&ws, "requests", x.iter().map(|r| r.cell.requests))?;
    col(&ws, "wasted_tokens", x.iter().map(|r| r.cell.wasted_tokens))?;
    col(&ws, "version", x.iter().map(|_| out.version))?;

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
        events: ev.unbind(),
        hourly: hr.unbind(),
        weekly: wk.unbind(),
        waste: ws.unbind(),
        rejected: rj.unbind(),
        duplicates: out.duplicates,
        accepted: out.events.len(),
        watermarks: wm.unbind(),
        version: out.version,
        progress: progress.unbind(),
        replayed: out.replayed,
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
fn waste_config(values: StdHashMap<String, i64>) -> Result<WasteConfig, CoreError> {
    let mut cfg = WasteConfig::default();
    for (name, v) in values {
        let unsigned = || {
            u64::try_from(v).map_err(|_| CoreError::Config(format!("waste {name} must be >= 0")))
        };
        match name.as_str() {
            "min_prompt_tokens" => cfg.min_prompt_tokens = unsigned()?,
            "duplicate_window_ms" => cfg.duplicate_window_ms = v,
            "free_repeats" => cfg.free_repeats = unsigned()?,
            "storm_window_ms" => cfg.storm_window_ms = v,
            "storm_min" => cfg.storm_min = unsigned()?,
            "loop_window_ms" => cfg.loop_window_ms = v,
            "loop_min" => cfg.loop_min = unsigned()?,
            "loop_bits" => cfg.loop_bits = u32::try_from(unsigned()?).unwrap_or(u32::MAX),
            "repeat_pct" => cfg.repeat_pct = unsigned()?,
            _ => return Err(CoreError::Config(format!("unknown waste setting {name:?}"))),
        }
    }
    Ok(cfg)
}

/// Bit 0: the prompt had text; bit 1: the output had text.
fn fp_flags(fp: &Fingerprint) -> u8 {
    u8::from(fp.prompt_text) | u8::from(fp.output_text) << 1
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
                        fallback_encoding="o200k_base", tokenizer_dir=None, waste=None))]
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
    ) -> PyResult<Self> {
        let mut prices: Vec<(String, (f64, f64, f64))> =
            prices.unwrap_or_default().into_iter().collect();
        prices.sort_by(|a, b| a.0.cmp(&b.0));
        let cfg = Config {
            grace_ms,
            dedupe_horizon_ms,
            future_tolerance_ms,
            max_message_bytes,
            prices,
            encodings: encoding_map(model_encodings, fallback_encoding, tokenizer_dir)?,
            waste: waste_config(waste.unwrap_or_default())?,
        };
        Ok(Core {
            inner: RustCore::new(cfg)?,
        })
    }

    /// Processes one batch of Kafka messages (GIL released while working).
    fn process(
        &mut self,
        py: Python<'_>,
        partitions: Vec<i32>,
        offsets: Vec<i64>,
        values: Vec<PyBackedBytes>,
        now_ms: i64,
    ) -> PyResult<Batch> {
        let msgs = messages(&partitions, &offsets, &values)?;
        let inner = &mut self.inner;
        let out = py.detach(|| inner.process(&msgs, now_ms));
        to_batch(py, &out)
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
        let (max, future) = (cfg.max_message_bytes, cfg.future_tolerance_ms);
        let out = py.detach(|| parse_outcomes(&msgs, max, now_ms, future));
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
        fn get<'py, T: for<'a> FromPyObject<'a, 'py>>(
            d: &Bound<'py, PyDict>,
            k: &str,
        ) -> PyResult<T> {
            match d.get_item(k)? {
                Some(v) => v.extract().map_err(Into::into),
                None => Err(InputError::new_err(format!(
                    "restore: events column {k:?} is missing"
                ))),
            }
        }
        let ids: Vec<String> = get(events, "event_id")?;
        let ts: Vec<i64> = get(events, "ts")?;
        let users: Vec<String> = get(events, "user")?;
        let teams: Vec<String> = get(events, "team")?;
        let models: Vec<String> = get(events, "model")?;
        let input: Vec<u64> = get(events, "input_tokens")?;
        let output: Vec<u64> = get(events, "output_tokens")?;
        let cached: Vec<u64> = get(events, "cached_input_tokens")?;
        let wasted: Vec<u64> = get(events, "wasted_tokens")?;
        let reasons: Vec<String> = get(events, "waste_reason")?;
        let cost: Vec<f64> = get(events, "cost_usd")?;
        let fp_prompt: Vec<u64> = get(events, "fp_prompt")?;
        let fp_prompt_sim: Vec<u64> = get(events, "fp_prompt_sim")?;
        let fp_output_sim: Vec<u64> = get(events, "fp_output_sim")?;
        let fp_flags: Vec<u8> = get(events, "fp_flags")?;
        let n = ids.len();
        let lens = [
            ts.len(),
            users.len(),
            teams.len(),
            models.len(),
            input.len(),
            output.len(),
            cached.len(),
            wasted.len(),
            reasons.len(),
            cost.len(),
            fp_prompt.len(),
            fp_prompt_sim.len(),
            fp_output_sim.len(),
            fp_flags.len(),
        ];
        if lens.iter().any(|l| *l != n) {
            return Err(CoreError::Input("restore: events columns differ in length".into()).into());
        }
        let stored: Vec<StoredEvent<'_>> = (0..n)
            .map(|i| StoredEvent {
                event_id: &ids[i],
                contribution: Contribution {
                    ts: ts[i],
                    user: &users[i],
                    team: &teams[i],
                    model: &models[i],
                    input_tokens: input[i],
                    output_tokens: output[i],
                    cached_input_tokens: cached[i],
                    wasted_tokens: wasted[i],
                    waste_reason: &reasons[i],
                    cost_usd: cost[i],
                },
                fingerprint: Fingerprint {
                    prompt: fp_prompt[i],
                    prompt_sim: fp_prompt_sim[i],
                    prompt_text: fp_flags[i] & 1 != 0,
                    output_sim: fp_output_sim[i],
                    output_text: fp_flags[i] & 2 != 0,
                    ..Fingerprint::default()
                },
            })
            .collect();
        let inner = &mut self.inner;
        let out =
            py.detach(|| inner.restore(partition, watermark_ms, min_version, &stored, next_offset));
        to_batch(py, &out)
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
    m.add_function(wrap_pyfunction!(count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(encoding_for, m)?)?;
    m.add_function(wrap_pyfunction!(encodings, m)?)?;
    m.add_function(wrap_pyfunction!(load_encodings, m)?)?;
    Ok(())
}
