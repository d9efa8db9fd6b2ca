//! Waste signals: which tokens of an event were burnt without producing
//! anything (docs/semantics.md, "Waste").
//!
//! Text is reduced to fingerprints while the batch is parsed (in parallel)
//! and dropped; the per-user state keeps only fingerprints, sketches and
//! timestamps of the longest waste window (the resend window, 24 h), at most
//! `RECENT_MAX` requests per user, so memory is bounded by the traffic of a
//! window, never by the length of the stream. Every rule is exact integer arithmetic on those
//! fingerprints so the plain-Python reference (tests/reference.py) gives the
//! same verdicts bit for bit.

use hashbrown::HashMap;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::CoreError;
use crate::fingerprint::{sketch_matches, Fingerprint, Sketch, SKETCH_BYTES};

/// Why a request's tokens were judged wasted (docs/semantics.md, "Waste"); the
/// one declaration of the names: `_core.WASTE_REASONS`, the stored
/// `waste_reason` and the Python side's explanations come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WasteReason {
    FailedRequest,
    RetryStorm,
    AgentLoop,
    DuplicatePrompt,
    NearDuplicate,
    PaddedPrompt,
    RepetitiveOutput,
}

impl WasteReason {
    /// Every reason, in rule order.
    pub const ALL: [WasteReason; 7] = [
        WasteReason::FailedRequest,
        WasteReason::RetryStorm,
        WasteReason::AgentLoop,
        WasteReason::DuplicatePrompt,
        WasteReason::NearDuplicate,
        WasteReason::PaddedPrompt,
        WasteReason::RepetitiveOutput,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            WasteReason::FailedRequest => "failed_request",
            WasteReason::RetryStorm => "retry_storm",
            WasteReason::AgentLoop => "agent_loop",
            WasteReason::DuplicatePrompt => "duplicate_prompt",
            WasteReason::NearDuplicate => "near_duplicate",
            WasteReason::PaddedPrompt => "padded_prompt",
            WasteReason::RepetitiveOutput => "repetitive_output",
        }
    }

    /// The stored name of an optional verdict (`""`: nothing wasted).
    pub fn name(reason: Option<WasteReason>) -> &'static str {
        reason.map_or("", WasteReason::as_str)
    }
}

pub const FAILED_REQUEST: &str = WasteReason::FailedRequest.as_str();
pub const RETRY_STORM: &str = WasteReason::RetryStorm.as_str();
pub const AGENT_LOOP: &str = WasteReason::AgentLoop.as_str();
pub const DUPLICATE_PROMPT: &str = WasteReason::DuplicatePrompt.as_str();
pub const PADDED_PROMPT: &str = WasteReason::PaddedPrompt.as_str();
pub const REPETITIVE_OUTPUT: &str = WasteReason::RepetitiveOutput.as_str();
pub const NEAR_DUPLICATE: &str = WasteReason::NearDuplicate.as_str();

/// Thresholds (settings `TOKENLORD_WASTE_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct WasteConfig {
    /// Prompts with fewer input tokens never count as repeats ("continue").
    pub min_prompt_tokens: u64,
    /// A prompt sent again within this span is a repeat.
    pub duplicate_window_ms: i64,
    /// Repeats of a prompt that are free (a regeneration); later ones are waste.
    pub free_repeats: u64,
    /// Identical requests this close together form a storm...
    pub storm_window_ms: i64,
    /// ...once there are this many of them.
    pub storm_min: u64,
    /// Near-identical request/answer pairs within this span form a loop...
    pub loop_window_ms: i64,
    /// ...from this many earlier ones on.
    pub loop_min: u64,
    /// SimHash bits two texts may differ in and still be near-identical.
    pub loop_bits: u32,
    /// A text is padding/repetitive when this percentage of it repeats.
    pub repeat_pct: u64,
    /// The same prompt text (by print) sent again within this longer span,
    /// however the re-sends are paced, is a repeat...
    pub resend_window_ms: i64,
    /// ...after this many free ones. A near-identical prompt that got the
    /// same answer (the loop test) more often than this within the span is
    /// a loop however slowly it is paced.
    pub resend_free: u64,
    /// A re-ask — a prompt whose MinHash sketch agrees with an earlier one's
    /// in at least `reask_prompt_pct` % of its buckets, answered alike (the
    /// outputs' sketches agree in `reask_output_pct` %) — within
    /// `resend_window` is waste after this many free ones (an edit and two
    /// retries stay free).
    pub reask_free: u64,
    pub reask_prompt_pct: u64,
    pub reask_output_pct: u64,
    /// A prompt is padding also when this percentage of it repeats in
    /// windows of 3 words (filler with every few words changed).
    pub short_repeat_pct: u64,
    /// Two answers long enough for sketches are "the same" (the loop test)
    /// only when their sketches also agree in this percentage of buckets:
    /// a SimHash alone takes two different tables for one.
    pub loop_answer_pct: u64,
}

impl Default for WasteConfig {
    fn default() -> Self {
        WasteConfig {
            min_prompt_tokens: 32,
            duplicate_window_ms: 3_600_000,
            free_repeats: 1,
            storm_window_ms: 10_000,
            storm_min: 3,
            loop_window_ms: 600_000,
            loop_min: 1,
            loop_bits: 3,
            repeat_pct: 50,
            resend_window_ms: 86_400_000,
            resend_free: 2,
            reask_free: 3,
            reask_prompt_pct: 10,
            reask_output_pct: 20,
            short_repeat_pct: 40,
            loop_answer_pct: 50,
        }
    }
}

impl WasteConfig {
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |what: &str| Err(CoreError::Config(format!("waste setting {what}")));
        if [
            self.duplicate_window_ms,
            self.storm_window_ms,
            self.loop_window_ms,
            self.resend_window_ms,
        ]
        .iter()
        .any(|w| *w <= 0)
        {
            return bad("windows must be > 0");
        }
        if self.storm_min < 2 || self.loop_min < 1 {
            return bad("storm_min must be >= 2 and loop_min >= 1");
        }
        if self.loop_bits > 32 {
            return bad("loop_bits must be <= 32");
        }
        if [
            self.repeat_pct,
            self.short_repeat_pct,
            self.reask_prompt_pct,
            self.reask_output_pct,
            self.loop_answer_pct,
        ]
        .iter()
        .any(|p| !(1..=100).contains(p))
        {
            return bad(
                "repeat_pct, short_repeat_pct, reask_*_pct and loop_answer_pct must be 1..100",
            );
        }
        Ok(())
    }

    /// The defaults with the thresholds given by name (the names of [`WasteConfig::named`];
    /// the Python settings pass them so); an unknown name or a negative count is an error.
    pub fn from_named(
        values: impl IntoIterator<Item = (String, i64)>,
    ) -> Result<WasteConfig, CoreError> {
        let mut cfg = WasteConfig::default();
        for (name, v) in values {
            let unsigned = || {
                u64::try_from(v)
                    .map_err(|_| CoreError::Config(format!("waste {name} must be >= 0")))
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
                "resend_window_ms" => cfg.resend_window_ms = v,
                "resend_free" => cfg.resend_free = unsigned()?,
                "reask_free" => cfg.reask_free = unsigned()?,
                "reask_prompt_pct" => cfg.reask_prompt_pct = unsigned()?,
                "reask_output_pct" => cfg.reask_output_pct = unsigned()?,
                "short_repeat_pct" => cfg.short_repeat_pct = unsigned()?,
                "loop_answer_pct" => cfg.loop_answer_pct = unsigned()?,
                _ => return Err(CoreError::Config(format!("unknown waste setting {name:?}"))),
            }
        }
        Ok(cfg)
    }

    /// Every threshold by its setting's name (`TOKENLORD_WASTE_*` without the
    /// prefix; windows in ms), as `tokenlord._core.WASTE_DEFAULTS` shows the
    /// defaults so that the Python settings can be checked against them.
    pub fn named(&self) -> [(&'static str, i64); 16] {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        [
            ("min_prompt_tokens", n(self.min_prompt_tokens)),
            ("duplicate_window_ms", self.duplicate_window_ms),
            ("free_repeats", n(self.free_repeats)),
            ("storm_window_ms", self.storm_window_ms),
            ("storm_min", n(self.storm_min)),
            ("loop_window_ms", self.loop_window_ms),
            ("loop_min", n(self.loop_min)),
            ("loop_bits", i64::from(self.loop_bits)),
            ("repeat_pct", n(self.repeat_pct)),
            ("resend_window_ms", self.resend_window_ms),
            ("resend_free", n(self.resend_free)),
            ("reask_free", n(self.reask_free)),
            ("reask_prompt_pct", n(self.reask_prompt_pct)),
            ("reask_output_pct", n(self.reask_output_pct)),
            ("short_repeat_pct", n(self.short_repeat_pct)),
            ("loop_answer_pct", n(self.loop_answer_pct)),
        ]
    }

    /// How far back any rule looks (state older than this is dropped).
    pub fn memory_ms(&self) -> i64 {
        self.duplicate_window_ms
            .max(self.storm_window_ms)
            .max(self.loop_window_ms)
            .max(self.resend_window_ms)
    }

    /// Timestamps kept per prompt: enough to decide both count rules.
    fn kept_per_prompt(&self) -> usize {
        (self.storm_min.saturating_sub(1))
            .max(self.free_repeats + 1)
            .max(self.resend_free + 1)
            .min(64) as usize
    }
}

fn nonzero(h: u64) -> u64 {
    h | 1
}

/// The fingerprint of a prompt known only by its size: the same model and
/// the same input count to the token, again and again, is a resent prompt.
pub fn counts_fingerprint(model: &str, input_tokens: u64) -> u64 {
    // xxh3 of "\0counts\0{model}\0{input_tokens}", built on the stack (no
    // allocation per event) when the model name is of a usual length.
    const PREFIX: &[u8] = b"\0counts\0";
    let mut buf = [0u8; 160];
    let digits = decimal(input_tokens);
    let n = PREFIX.len() + model.len() + 1 + digits.1;
    if n > buf.len() {
        let key = format!("\0counts\0{model}\0{input_tokens}");
        return nonzero(xxh3_64(key.as_bytes()));
    }
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let at = PREFIX.len() + model.len();
    buf[PREFIX.len()..at].copy_from_slice(model.as_bytes());
    buf[at] = 0;
    buf[at + 1..n].copy_from_slice(&digits.0[20 - digits.1..]);
    nonzero(xxh3_64(&buf[..n]))
}

/// The decimal digits of `v`: right-aligned in 20 bytes, and their count.
fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut d = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (d, 20 - i)
}

/// One earlier request of a user, for the loop and re-ask rules (sketches
/// boxed: most requests have none, and the list holds up to `RECENT_MAX`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Recent {
    ts: i64,
    prompt_sim: u64,
    output_sim: u64,
    output_text: bool,
    output_tokens: u64,
    input_tokens: u64,
    /// MinHash sketches of the prompt and of the output (sides long enough).
    prompt_mh: Option<Box<Sketch>>,
    output_mh: Option<Box<Sketch>>,
}

/// Requests with a prompt print remembered per user: enough that a loop
/// diluted with a hundred other requests between its repeats stays in view.
pub const RECENT_MAX: usize = 256;

/// The waste state of one user on one partition.
#[derive(Debug, Default, Clone)]
pub struct UserWaste {
    /// Prompt fingerprint → its latest timestamps (at most a few).
    prompts: HashMap<u64, Vec<i64>>,
    /// Latest requests with a prompt print (at most `RECENT_MAX`; which are
    /// kept depends only on their times, never on arrival order).
    recent: Vec<Recent>,
}

/// What is judged of one accepted event.
pub struct Request<'a> {
    pub ts: i64,
    /// Remembered requests older than this are ignored: the partition's
    /// watermark minus the waste memory (`Config::waste_memory_ms`), so a
    /// verdict never depends on when state was last swept or restored.
    pub since: i64,
    pub model: &'a str,
    pub is_error: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub fp: &'a Fingerprint,
}

fn near(a: u64, b: u64, bits: u32) -> bool {
    (a ^ b).count_ones() <= bits
}

/// Whether two sketches agree in at least `pct` % of their buckets.
fn alike(a: &Sketch, b: &Sketch, pct: u64) -> bool {
    sketch_matches(a, b) * 100 >= pct * SKETCH_BYTES as u64
}

fn share(tokens: u64, (repeated, total): (u64, u64), pct: u64) -> u64 {
    // In u128: a print's counts may be as large as a u64 (a hostile gateway).
    if total == 0 || u128::from(repeated) * 100 < u128::from(pct) * u128::from(total) {
        return 0;
    }
    (u128::from(tokens) * u128::from(repeated) / u128::from(total)) as u64
}

impl UserWaste {
    /// Judges `r` against this user's recent requests, then remembers it.
    /// Returns (wasted tokens, reason); no reason when nothing is wasted.
    pub fn judge(&mut self, r: &Request<'_>, cfg: &WasteConfig) -> (u64, Option<WasteReason>) {
        let total = r.input_tokens + r.output_tokens;
        let prompt = if let Some(p) = &r.fp.prompt {
            p.hash
        } else if r.input_tokens >= cfg.min_prompt_tokens {
            counts_fingerprint(r.model, r.input_tokens)
        } else {
            0
        };
        let repeatable = prompt != 0 && r.input_tokens >= cfg.min_prompt_tokens;
        let within = |t: i64, span: i64| t >= r.since && (r.ts - t).abs() <= span;
        let verdict = if r.is_error {
            (total, Some(WasteReason::FailedRequest))
        } else {
            let times: &[i64] = if repeatable {
                self.prompts.get(&prompt).map_or(&[], Vec::as_slice)
            } else {
                &[]
            };
            let storm = times
                .iter()
                .filter(|t| within(**t, cfg.storm_window_ms))
                .count() as u64;
            let dups = times
                .iter()
                .filter(|t| within(**t, cfg.duplicate_window_ms))
                .count() as u64;
            // Exact re-sends of a printed prompt over the longer span: pacing
            // them just outside the short window does not hide them.
            let resent = if r.fp.prompt.is_some() {
                times
                    .iter()
                    .filter(|t| within(**t, cfg.resend_window_ms))
                    .count() as u64
            } else {
                0
            };
            // Loop steps (near-identical prompt, the same answer): within the
            // loop window, and over the resend window however they are paced.
            let (mut looped, mut looped_slowly) = (0u64, 0u64);
            // Re-asks: a prompt like an earlier one (reworded, reordered)
            // answered alike, within the resend window.
            let mut reasked = 0u64;
            if let (true, Some(p)) = (repeatable, &r.fp.prompt) {
                let sketches = p.mh.zip(r.fp.output.and_then(|o| o.mh));
                for x in &self.recent {
                    let (in_loop, in_day) = (
                        within(x.ts, cfg.loop_window_ms),
                        within(x.ts, cfg.resend_window_ms),
                    );
                    if !(in_loop || in_day) {
                        continue;
                    }
                    if near(x.prompt_sim, p.sim, cfg.loop_bits) && same_answer(x, r, cfg) {
                        looped += u64::from(in_loop);
                        looped_slowly += u64::from(in_day);
                    }
                    if let (true, Some((pm, om)), Some(xp), Some(xo)) =
                        (in_day, &sketches, &x.prompt_mh, &x.output_mh)
                    {
                        // A prompt that grew by the earlier answer continues
                        // that conversation (a revision), it does not re-ask.
                        reasked += u64::from(
                            r.input_tokens < x.input_tokens + x.output_tokens
                                && alike(pm, xp, cfg.reask_prompt_pct)
                                && alike(om, xo, cfg.reask_output_pct),
                        );
                    }
                }
            }
            if storm + 1 >= cfg.storm_min {
                (total, Some(WasteReason::RetryStorm))
            } else if looped >= cfg.loop_min || looped_slowly > cfg.resend_free {
                (total, Some(WasteReason::AgentLoop))
            } else if dups > cfg.free_repeats || resent > cfg.resend_free {
                (total, Some(WasteReason::DuplicatePrompt))
            } else if reasked > cfg.reask_free {
                (total, Some(WasteReason::NearDuplicate))
            } else {
                let padded = share(
                    r.input_tokens,
                    r.fp.prompt.map_or((0, 0), |p| p.repeat),
                    cfg.repeat_pct,
                )
                .max(share(
                    r.input_tokens,
                    r.fp.prompt.map_or((0, 0), |p| p.repeat3),
                    cfg.short_repeat_pct,
                ));
                let repetitive = share(
                    r.output_tokens,
                    r.fp.output.map_or((0, 0), |o| o.repeat),
                    cfg.repeat_pct,
                );
                match (padded, repetitive) {
                    (0, 0) => (0, None),
                    (p, o) if p >= o => (p + o, Some(WasteReason::PaddedPrompt)),
                    // The request bought mostly repetition: its prompt is spent too.
                    (_, o) => (r.input_tokens + o, Some(WasteReason::RepetitiveOutput)),
                }
            }
        };
        self.remember(prompt, repeatable, r, cfg);
        verdict
    }

    fn remember(&mut self, prompt: u64, repeatable: bool, r: &Request<'_>, cfg: &WasteConfig) {
        if repeatable {
            let times = self.prompts.entry(prompt).or_default();
            times.push(r.ts);
            times.sort_unstable_by(|a, b| b.cmp(a));
            times.truncate(cfg.kept_per_prompt());
        }
        if let (true, Some(p)) = (repeatable, &r.fp.prompt) {
            self.recent.push(Recent {
                ts: r.ts,
                prompt_sim: p.sim,
                output_sim: r.fp.output.map_or(0, |o| o.sim),
                output_text: r.fp.output.is_some(),
                output_tokens: r.output_tokens,
                input_tokens: r.input_tokens,
                prompt_mh: p.mh.map(Box::new),
                output_mh: r.fp.output.and_then(|o| o.mh).map(Box::new),
            });
            if self.recent.len() > RECENT_MAX {
                let oldest = (0..self.recent.len())
                    .min_by_key(|i| &self.recent[*i])
                    .unwrap_or(0);
                self.recent.swap_remove(oldest);
            }
        }
    }

    /// Drops what no rule can look at any more; true when nothing is left.
    pub fn evict(&mut self, before_ms: i64) -> bool {
        self.prompts
            .retain(|_, times| times.iter().any(|t| *t >= before_ms));
        self.recent.retain(|x| x.ts >= before_ms);
        self.prompts.is_empty() && self.recent.is_empty()
    }

    pub fn size(&self) -> usize {
        self.prompts.len() + self.recent.len()
    }
}

/// The same answer again: near-identical output text (SimHash within
/// `loop_bits`, and sketches agreeing in `loop_answer_pct` % when both
/// answers have one), or, without text, an output count within 10 %.
fn same_answer(x: &Recent, r: &Request<'_>, cfg: &WasteConfig) -> bool {
    match (x.output_text, &r.fp.output) {
        (true, Some(o)) => {
            near(x.output_sim, o.sim, cfg.loop_bits)
                && match (&x.output_mh, &o.mh) {
                    (Some(a), Some(b)) => alike(a, b, cfg.loop_answer_pct),
                    _ => true,
                }
        }
        (false, None) => {
            let (a, b) = (x.output_tokens, r.output_tokens);
            a.abs_diff(b) * 10 <= a.max(b)
        }
        _ => false,
    }
}

#[cfg(test)]
impl UserWaste {
    /// [`UserWaste::judge`] with the reason by its stored name (`""`: none), for the tests.
    fn verdict(&mut self, r: &Request<'_>, cfg: &WasteConfig) -> (u64, &'static str) {
        let (wasted, reason) = self.judge(r, cfg);
        (wasted, WasteReason::name(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FingerprintKey;

    fn fingerprint(prompt: Option<&str>, output: Option<&str>) -> Fingerprint {
        Fingerprint::of(&FingerprintKey::default(), prompt, output)
    }

    #[test]
    fn counts_fingerprint_is_the_hash_of_its_key() {
        let long = "m".repeat(200);
        for (model, n) in [
            ("gpt-4o", 0u64),
            ("claude", 7),
            ("", u64::MAX),
            (long.as_str(), 12_345),
        ] {
            let key = format!("\0counts\0{model}\0{n}");
            assert_eq!(
                counts_fingerprint(model, n),
                nonzero(xxh3_64(key.as_bytes()))
            );
        }
    }

    const T0: i64 = 1_704_067_200_000;

    fn req<'a>(ts: i64, fp: &'a Fingerprint, input: u64, output: u64) -> Request<'a> {
        Request {
            ts,
            since: i64::MIN,
            model: "m",
            is_error: false,
            input_tokens: input,
            output_tokens: output,
            fp,
        }
    }

    fn prose(seed: u64, words: usize) -> String {
        let vocab = [
            "alpha", "beta", "gamma", "delta", "tokens", "model", "answer", "user", "query",
            "data", "report", "graph", "table", "error", "value", "index", "cache", "batch",
        ];
        // A vocabulary of ~2,000 words (18 stems, numbered), like prose has.
        let mut s = seed;
        (0..words)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let i = (s >> 33) as usize % 2016;
                format!("{}{}", vocab[i % vocab.len()], i / vocab.len())
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_regeneration_is_free_the_third_send_is_waste() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let p = prose(1, 200);
        let fps: Vec<Fingerprint> = (0..3)
            .map(|i| fingerprint(Some(&p), Some(&prose(100 + i, 300))))
            .collect();
        let minute = 60_000;
        assert_eq!(u.verdict(&req(T0, &fps[0], 300, 400), &cfg), (0, ""));
        assert_eq!(
            u.verdict(&req(T0 + minute, &fps[1], 300, 400), &cfg),
            (0, "")
        );
        assert_eq!(
            u.verdict(&req(T0 + 2 * minute, &fps[2], 300, 400), &cfg),
            (700, DUPLICATE_PROMPT)
        );
        // Outside the hour, the fourth send of the day is still a repeat
        // (however re-sends are paced); a day later it is a new prompt again.
        assert_eq!(
            u.verdict(&req(T0 + 5 * 3_600_000, &fps[2], 300, 400), &cfg),
            (700, DUPLICATE_PROMPT)
        );
        assert_eq!(
            u.verdict(&req(T0 + 30 * 3_600_000, &fps[2], 300, 400), &cfg),
            (0, "")
        );
    }

    #[test]
    fn short_prompts_like_continue_are_never_repeats() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        for i in 0..10 {
            let fp = fingerprint(Some("continue"), Some(&prose(i, 100)));
            assert_eq!(
                u.verdict(&req(T0 + i as i64 * 1000, &fp, 1, 150), &cfg),
                (0, "")
            );
        }
    }

    #[test]
    fn identical_requests_seconds_apart_are_a_storm() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let fp = Fingerprint::default(); // counts only
        let verdicts: Vec<_> = (0..4)
            .map(|i| u.verdict(&req(T0 + i * 2000, &fp, 5000, 10), &cfg).1)
            .collect();
        assert_eq!(verdicts, ["", "", RETRY_STORM, RETRY_STORM]);
    }

    #[test]
    fn near_identical_prompt_and_answer_is_a_loop_but_a_growing_chat_is_not() {
        let cfg = WasteConfig::default();
        let base = prose(7, 400);
        let answer = prose(8, 200);
        let mut u = UserWaste::default();
        let reasons: Vec<_> = (0..5)
            .map(|i| {
                let fp = fingerprint(Some(&format!("{base} step {i}")), Some(&answer));
                u.verdict(&req(T0 + i * 30_000, &fp, 600, 300), &cfg).1
            })
            .collect();
        assert_eq!(
            reasons,
            ["", AGENT_LOOP, AGENT_LOOP, AGENT_LOOP, AGENT_LOOP]
        );
        // A conversation: each prompt extends the last, answers differ.
        let mut chat = UserWaste::default();
        let mut context = prose(9, 300);
        for i in 0..8 {
            let fp = fingerprint(Some(&context), Some(&prose(50 + i, 150)));
            assert_eq!(
                chat.verdict(&req(T0 + i as i64 * 30_000, &fp, 500, 200), &cfg),
                (0, "")
            );
            context = format!("{context} {}", prose(80 + i, 40));
        }
    }

    #[test]
    fn padding_and_repetitive_output_waste_their_share() {
        let cfg = WasteConfig::default();
        let filler = prose(3, 40);
        let padded = format!("{} {}", prose(4, 60), vec![filler.as_str(); 20].join(" "));
        let fp = fingerprint(Some(&padded), Some(&prose(5, 200)));
        let (wasted, reason) = UserWaste::default().verdict(&req(T0, &fp, 1000, 250), &cfg);
        assert_eq!(reason, PADDED_PROMPT);
        assert!((850..=960).contains(&wasted), "{wasted}");
        // A long but diverse output is not repetitive.
        let fp = fingerprint(Some(&prose(6, 100)), Some(&prose(7, 5000)));
        assert_eq!(
            UserWaste::default().verdict(&req(T0, &fp, 150, 7000), &cfg),
            (0, "")
        );
        // One phrase over and over is; so is one huge "word".
        let looped = vec!["the same phrase again"; 500].join(" ");
        let fp = fingerprint(Some(&prose(6, 100)), Some(&looped));
        let (w, r) = UserWaste::default().verdict(&req(T0, &fp, 150, 2000), &cfg);
        assert_eq!(r, REPETITIVE_OUTPUT);
        assert!(w > 150 + 1900, "{w}"); // the prompt too
        let fp = fingerprint(Some(&prose(6, 100)), Some(&"a".repeat(100_000)));
        assert_eq!(
            UserWaste::default()
                .verdict(&req(T0, &fp, 150, 12_500), &cfg)
                .1,
            REPETITIVE_OUTPUT
        );
    }

    fn sentences(seed: u64, n: u64) -> String {
        (0..n)
            .map(|i| format!("{}.", prose(seed * 1000 + i, 12)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_loop_diluted_with_other_requests_stays_in_view() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let (prompt, answer) = (sentences(5, 30), sentences(6, 20));
        let mut t = T0;
        let mut reasons = Vec::new();
        for round in 0..5u64 {
            for j in 0..60u64 {
                let junk = fingerprint(
                    Some(&sentences(100 + round * 100 + j, 8)),
                    Some(&sentences(7000 + round * 100 + j, 5)),
                );
                assert_eq!(u.verdict(&req(t, &junk, 200, 100), &cfg), (0, ""));
                t += 5_000; // 60 requests between two steps, all within the loop window
            }
            let fp = fingerprint(Some(&format!("{prompt} step {round}")), Some(&answer));
            reasons.push(u.verdict(&req(t, &fp, 500, 300), &cfg).1);
        }
        assert_eq!(
            reasons,
            ["", AGENT_LOOP, AGENT_LOOP, AGENT_LOOP, AGENT_LOOP]
        );
        assert!(u.recent.len() <= RECENT_MAX);
    }

    /// `text` with every `stride`-th word (from `at`) swapped for another
    /// word and, with `shuffle`, its sentences in another order.
    fn reword(text: &str, stride: usize, at: usize, shuffle: u64) -> String {
        let mut sents: Vec<Vec<String>> = text
            .split(". ")
            .map(|s| s.split(' ').map(str::to_string).collect())
            .collect();
        let mut i = 0;
        for s in &mut sents {
            for w in s.iter_mut() {
                if i % stride == at {
                    *w = format!("other{w}");
                }
                i += 1;
            }
        }
        if shuffle > 0 {
            let n = sents.len();
            sents.rotate_left((shuffle as usize) % n);
            sents.swap(0, n / 2);
        }
        sents
            .iter()
            .map(|s| s.join(" "))
            .collect::<Vec<_>>()
            .join(". ")
    }

    #[test]
    fn a_reworded_reask_is_waste_after_the_free_ones() {
        let cfg = WasteConfig::default();
        let (question, answer) = (sentences(11, 40), sentences(12, 15));
        let mut u = UserWaste::default();
        let reasons: Vec<_> = (0..10u64)
            .map(|i| {
                // Never the same wording twice: other words swapped, other orders.
                let p = reword(&question, 8 + (i % 2) as usize, (i % 8) as usize, i);
                let o = reword(&answer, 10, (i % 10) as usize, i % 3);
                let fp = fingerprint(Some(&p), Some(&o));
                // Hours apart: no window of the exact-match rules sees them.
                u.verdict(&req(T0 + i as i64 * 1_500_000, &fp, 600, 250), &cfg)
                    .1
            })
            .collect();
        // Four asks are free (an edit and retries); most later ones are seen
        // (each is compared with every earlier one: a few pairs differ more).
        assert_eq!(reasons[..4], ["", "", "", ""]);
        let seen = reasons[4..]
            .iter()
            .filter(|r| **r == NEAR_DUPLICATE)
            .count();
        assert!(seen >= 5, "{reasons:?}");
    }

    #[test]
    fn an_edit_and_retry_a_batch_template_and_a_growing_chat_are_not_reasks() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        // An edit and three retries of one prompt, each answer keeping half of the last.
        let mut prompt = sentences(21, 30);
        let mut answer = sentences(22, 12);
        for v in 0..4u64 {
            let fp = fingerprint(Some(&prompt), Some(&answer));
            assert_eq!(
                u.verdict(&req(T0 + v as i64 * 60_000, &fp, 500, 200), &cfg),
                (0, "")
            );
            prompt = reword(&prompt, 40, v as usize, 0);
            let half: Vec<&str> = answer.split(". ").step_by(2).collect();
            answer = format!("{}. {}", half.join(". "), sentences(300 + v, 6));
        }
        // A batch job: one long template, another file and another review each time.
        let template = sentences(31, 40);
        let mut b = UserWaste::default();
        for i in 0..30u64 {
            let fp = fingerprint(
                Some(&format!(
                    "{template}\n--- file {i}\n{}",
                    sentences(400 + i, 25)
                )),
                Some(&sentences(500 + i, 10)),
            );
            assert_eq!(
                b.verdict(&req(T0 + i as i64 * 5_000, &fp, 3000, 300), &cfg),
                (0, "")
            );
        }
        // Revising a file in a conversation: each prompt holds the last answer,
        // each answer is the file again with a few lines changed.
        let mut r = UserWaste::default();
        let (mut talk, mut file) = (sentences(35, 10), sentences(36, 30));
        for i in 0..10u64 {
            let inp = 400 + 500 * i;
            let fp = fingerprint(Some(&format!("{talk} {file}")), Some(&file));
            assert_eq!(
                r.verdict(&req(T0 + i as i64 * 90_000, &fp, inp, 480), &cfg),
                (0, "")
            );
            talk = format!("{talk} {}", sentences(800 + i, 1));
            file = reword(&file, 40, i as usize, 0);
        }
        // A chat whose context grows, with short answers alike: too short to sketch.
        let mut c = UserWaste::default();
        let mut context = sentences(41, 20);
        for i in 0..12u64 {
            let fp = fingerprint(Some(&context), Some(&format!("Done, {i} tests pass now.")));
            assert_eq!(
                c.verdict(&req(T0 + i as i64 * 20_000, &fp, 800, 8), &cfg),
                (0, "")
            );
            context = format!("{context} {}", sentences(600 + i, 3));
        }
    }

    /// A markdown table of `rows` rows with distinct values (seeded).
    fn table(seed: u64, rows: u64) -> String {
        let mut out = String::from("| id | status | region | p50_ms |\n|---|---|---|---|\n");
        let mut x = seed;
        for i in 0..rows {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let status = ["ok", "degraded", "down"][(x >> 40) as usize % 3];
            out += &format!(
                "| {i} | {status} | eu-{} | {} |\n",
                (x >> 20) % 9,
                (x >> 33) % 100_000
            );
        }
        out
    }

    #[test]
    fn different_tables_for_a_growing_prompt_are_not_a_loop() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let context = sentences(90, 40);
        let fps: Vec<Fingerprint> = (0..6u64)
            .map(|i| fingerprint(Some(&format!("{context} more {i}")), Some(&table(i, 300))))
            .collect();
        // The tables' SimHashes are alike (the loop test alone would take them for one answer)...
        let (a, b) = (fps[0].output.unwrap(), fps[1].output.unwrap());
        assert!(
            (a.sim ^ b.sim).count_ones() <= cfg.loop_bits,
            "{:x} {:x}",
            a.sim,
            b.sim
        );
        // ...their sketches are not.
        for (i, fp) in fps.iter().enumerate() {
            assert_eq!(
                u.verdict(&req(T0 + i as i64 * 60_000, fp, 900, 1500), &cfg),
                (0, "")
            );
        }
    }

    #[test]
    fn a_loop_paced_outside_the_loop_window_is_still_a_loop() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let (prompt, answer) = (sentences(51, 30), sentences(52, 12));
        let reasons: Vec<_> = (0..6i64)
            .map(|i| {
                let fp = fingerprint(Some(&format!("{prompt} step {i}")), Some(&answer));
                u.verdict(&req(T0 + i * 13 * 60_000, &fp, 600, 250), &cfg).1
            })
            .collect();
        assert_eq!(reasons, ["", "", "", AGENT_LOOP, AGENT_LOOP, AGENT_LOOP]);
    }

    #[test]
    fn filler_with_every_fifth_word_changed_is_padding() {
        let cfg = WasteConfig::default();
        let pool: Vec<String> = (0..8).map(|i| sentences(700 + i, 1)).collect();
        let mut words: Vec<String> = Vec::new();
        for i in 0..120usize {
            words.extend(pool[i * 5 % 8].split(' ').map(str::to_string));
        }
        for (i, w) in words.iter_mut().enumerate() {
            if i % 5 == 2 {
                *w = format!("noise{i}");
            }
        }
        let prompt = format!("{} {}", sentences(60, 3), words.join(" "));
        let fp = fingerprint(Some(&prompt), Some(&sentences(61, 5)));
        let p = fp.prompt.unwrap();
        assert!(
            p.repeat.0 * 100 < 50 * p.repeat.1,
            "10-word windows miss it: {:?}",
            p.repeat
        );
        let (wasted, reason) = UserWaste::default().verdict(&req(T0, &fp, 4000, 100), &cfg);
        assert_eq!(reason, PADDED_PROMPT);
        assert!(wasted > 2000, "{wasted}");
        // Honest prose of the same length is not.
        let fp = fingerprint(Some(&sentences(62, 120)), Some(&sentences(63, 5)));
        assert_eq!(
            UserWaste::default().verdict(&req(T0, &fp, 4000, 100), &cfg),
            (0, "")
        );
    }

    #[test]
    fn huge_repetition_counts_do_not_overflow() {
        // A print may say anything up to u64::MAX: 100 · 2^58 must not wrap below 40 · 2^58.
        let big = 1u64 << 58;
        assert_eq!(share(1000, (big, big), 40), 1000);
        assert_eq!(share(1000, (u64::MAX, u64::MAX), 100), 1000);
        assert_eq!(share(1000, (u64::MAX / 3, u64::MAX), 50), 0);
    }

    #[test]
    fn errors_waste_everything_and_state_is_evicted() {
        let cfg = WasteConfig::default();
        let mut u = UserWaste::default();
        let fp = fingerprint(Some(&prose(1, 100)), None);
        let mut r = req(T0, &fp, 200, 0);
        r.is_error = true;
        assert_eq!(u.verdict(&r, &cfg), (200, FAILED_REQUEST));
        assert!(u.size() > 0);
        assert!(!u.evict(T0));
        assert!(u.evict(T0 + 1));
        assert_eq!(u.size(), 0);
    }

    #[test]
    fn thresholds_by_name_round_trip_and_refuse_unknown_names() {
        let cfg = WasteConfig {
            reask_free: 9,
            loop_bits: 5,
            ..WasteConfig::default()
        };
        let named = cfg.named().map(|(n, v)| (n.to_owned(), v));
        assert_eq!(WasteConfig::from_named(named).unwrap(), cfg);
        assert!(WasteConfig::from_named([("nope".to_owned(), 1)]).is_err());
        assert!(WasteConfig::from_named([("storm_min".to_owned(), -1)]).is_err());
    }
}
