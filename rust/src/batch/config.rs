//! The core's settings (the Python side fills them from `TOKENLORD_*`) and the
//! price table lookup.

use crate::error::CoreError;
use crate::fingerprint::FingerprintKey;
use crate::guard::Limits;
use crate::tokenize::EncodingMap;
use crate::waste::WasteConfig;

/// USD per 1M tokens: (input, cached input, output).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

impl Price {
    /// USD for these token counts (`cached` of the `input` were cache reads).
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> f64 {
        (input.saturating_sub(cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + output as f64 * self.output)
            / 1_000_000.0
    }
}

/// `(input, cached input, output)`, as the price table of the settings gives it.
impl From<(f64, f64, f64)> for Price {
    fn from((input, cached_input, output): (f64, f64, f64)) -> Self {
        Price {
            input,
            cached_input,
            output,
        }
    }
}

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
        for (model, p) in &self.prices {
            if ![p.input, p.cached_input, p.output]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0)
            {
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

    pub(super) fn price(&self, model: &str) -> Price {
        self.prices
            .iter()
            .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(Price::default(), |(_, p)| *p)
    }
}
