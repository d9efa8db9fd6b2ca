//! Rebuilding a partition's state from the events the store kept (after a
//! restart or a rebalance), in one call or in chunks.

use hashbrown::HashMap;

use crate::fingerprint::Fingerprint;
use crate::waste::Request;
use crate::window::{Contribution, Touched, Windows};

use super::*;

/// An accepted event read back from the store, for [`Core::restore`].
#[derive(Debug, Clone)]
pub struct StoredEvent<'a> {
    pub event_id: &'a str,
    pub contribution: Contribution<'a>,
    pub fingerprint: Fingerprint,
}

impl Core {
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
}

/// Stored events as columns (`RESTORE_COLUMNS` in store/client.py; from Python a
/// dict of lists, each key the column's name), for [`Core::restore`].
#[derive(Debug, Default)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct StoredColumns {
    #[cfg_attr(feature = "python", pyo3(item("event_id")))]
    pub ids: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("ts")))]
    pub ts: Vec<i64>,
    #[cfg_attr(feature = "python", pyo3(item("user")))]
    pub users: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("team")))]
    pub teams: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("model")))]
    pub models: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("input_tokens")))]
    pub input: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("output_tokens")))]
    pub output: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("cached_input_tokens")))]
    pub cached: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("wasted_tokens")))]
    pub wasted: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("waste_reason")))]
    pub reasons: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("cost_usd")))]
    pub cost: Vec<f64>,
    #[cfg_attr(feature = "python", pyo3(item("fp_prompt")))]
    pub fp_prompt: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("fp_prompt_sim")))]
    pub fp_prompt_sim: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("fp_output_sim")))]
    pub fp_output_sim: Vec<u64>,
    #[cfg_attr(feature = "python", pyo3(item("fp_flags")))]
    pub fp_flags: Vec<u8>,
    #[cfg_attr(feature = "python", pyo3(item("fp_prompt_mh")))]
    pub fp_prompt_mh: Vec<String>,
    #[cfg_attr(feature = "python", pyo3(item("fp_output_mh")))]
    pub fp_output_mh: Vec<String>,
}

impl StoredColumns {
    /// Itself, once every column has as many rows as `event_id`.
    pub fn checked(self) -> Result<StoredColumns, CoreError> {
        let n = self.ids.len();
        let lens = [
            self.ts.len(),
            self.users.len(),
            self.teams.len(),
            self.models.len(),
            self.input.len(),
            self.output.len(),
            self.cached.len(),
            self.wasted.len(),
            self.reasons.len(),
            self.cost.len(),
            self.fp_prompt.len(),
            self.fp_prompt_sim.len(),
            self.fp_output_sim.len(),
            self.fp_flags.len(),
            self.fp_prompt_mh.len(),
            self.fp_output_mh.len(),
        ];
        if lens.iter().any(|l| *l != n) {
            return Err(CoreError::Input(
                "restore: events columns differ in length".into(),
            ));
        }
        Ok(self)
    }

    /// The rows as events (borrowing the columns).
    pub fn events(&self) -> Vec<StoredEvent<'_>> {
        (0..self.ids.len())
            .map(|i| StoredEvent {
                event_id: &self.ids[i],
                contribution: Contribution {
                    ts: self.ts[i],
                    user: &self.users[i],
                    team: &self.teams[i],
                    model: &self.models[i],
                    input_tokens: self.input[i],
                    output_tokens: self.output[i],
                    cached_input_tokens: self.cached[i],
                    wasted_tokens: self.wasted[i],
                    waste_reason: &self.reasons[i],
                    cost_usd: self.cost[i],
                },
                fingerprint: Fingerprint::from_stored(
                    (
                        self.fp_prompt[i],
                        self.fp_prompt_sim[i],
                        self.fp_output_sim[i],
                        self.fp_flags[i],
                    ),
                    &self.fp_prompt_mh[i],
                    &self.fp_output_mh[i],
                ),
            })
            .collect()
    }
}
