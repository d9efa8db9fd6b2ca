//! Parsing and validation of usage events (docs/semantics.md).
//!
//! A message value is split into elements (one object, an array, or NDJSON);
//! each element is read in one pass by a serde visitor that borrows strings
//! from the input where it can and keeps only the fields tokenlord knows.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{Field, Reason};
use crate::fingerprint::Wire;
use crate::time::{parse_rfc3339, MAX_TS_MS};

/// Largest accepted token count.
pub const MAX_TOKENS: i128 = 1_000_000_000;
pub(crate) const MAX_ID_CHARS: usize = 128;
pub(crate) const MAX_USER_CHARS: usize = 256;
pub(crate) const MAX_NAME_CHARS: usize = 256;
const MAX_LATENCY: i128 = i32::MAX as i128;

/// One element of a message: the bytes of an event object, or a rejection.
#[derive(Debug)]
pub enum Element<'a> {
    /// `json` is what to parse; `raw` what a rejection reports (the original
    /// bytes: for a whole-message object, including a leading BOM).
    Event {
        json: &'a [u8],
        raw: &'a [u8],
    },
    Rejected(Reason, &'a [u8]),
}

impl<'a> Element<'a> {
    fn event(json: &'a [u8]) -> Self {
        Element::Event { json, raw: json }
    }
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| is_ws(**c)).count();
    &b[n..]
}

/// The body of a message that may be one event object: within the size
/// limit and, after an optional BOM and whitespace, starting with `{`. When
/// [`parse_event`] accepts that body, [`split_message`] would have yielded
/// exactly `Element::Event { json: body, raw: value }` (parse_event accepts
/// only one complete JSON value, and no deeper one than `RawValue` does), so
/// the caller may skip the split; when it fails (an NDJSON message, a bad
/// event), the caller falls back to the split, which finds the reason.
pub fn single_object(value: &[u8], max_bytes: usize) -> Option<&[u8]> {
    if value.len() > max_bytes {
        return None;
    }
    let body = value.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(value);
    (trim_start(body).first() == Some(&b'{')).then_some(body)
}

/// Splits one message value into elements, in order (docs/semantics.md).
pub fn split_message(value: &[u8], max_bytes: usize) -> Vec<Element<'_>> {
    if value.len() > max_bytes {
        return vec![Element::Rejected(Reason::TooLarge, value)];
    }
    let body = value.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(value);
    let first = trim_start(body).first().copied();
    match first {
        None => return vec![Element::Rejected(Reason::InvalidJson, value)],
        Some(b'[') => {
            // RawValue skips numbers without range checks: validate strictly first.
            let valid = serde_json::from_slice::<Skip>(body).is_ok();
            if let (true, Ok(items)) = (valid, serde_json::from_slice::<Vec<&RawValue>>(body)) {
                return items
                    .into_iter()
                    .map(|item| {
                        let raw = item.get().as_bytes();
                        if raw.first() == Some(&b'{') {
                            Element::event(raw)
                        } else {
                            Element::Rejected(Reason::NotAnObject, raw)
                        }
                    })
                    .collect();
            }
        }
        // An object is validated by `parse_event` (one pass); other values here.
        Some(b'{') => {
            if serde_json::from_slice::<&RawValue>(body).is_ok() {
                return vec![Element::Event {
                    json: body,
                    raw: value,
                }];
            }
        }
        Some(_) => {
            if serde_json::from_slice::<Skip>(body).is_ok() {
                return vec![Element::Rejected(Reason::NotAnObject, value)];
            }
        }
    }
    split_ndjson(value, body)
}

fn split_ndjson<'a>(value: &'a [u8], body: &'a [u8]) -> Vec<Element<'a>> {
    let lines: Vec<&[u8]> = body
        .split(|c| *c == b'\n')
        .filter(|line| !line.iter().all(|c| is_ws(*c)))
        .collect();
    if lines.len() <= 1 {
        return vec![Element::Rejected(Reason::InvalidJson, value)];
    }
    let out: Vec<Element<'a>> = lines
        .into_iter()
        .map(|line| match serde_json::from_slice::<Skip>(line) {
            Ok(Skip(true)) => Element::event(line),
            Ok(Skip(false)) => Element::Rejected(Reason::NotAnObject, line),
            Err(_) => Element::Rejected(Reason::InvalidJson, line),
        })
        .collect();
    if out
        .iter()
        .all(|e| matches!(e, Element::Rejected(Reason::InvalidJson, _)))
    {
        return vec![Element::Rejected(Reason::InvalidJson, value)];
    }
    out
}

/// Any JSON value, fully checked (numbers included: `RawValue` and
/// `IgnoredAny` skip number range checks) and thrown away; `true` when it was
/// an object.
pub struct Skip(pub bool);

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SkipVisitor;
        impl<'de> Visitor<'de> for SkipVisitor {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
                Ok(Skip(true))
            }
        }
        d.deserialize_any(SkipVisitor)
    }
}

/// A JSON value as far as tokenlord cares about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool,
    Int(i128),
    Float,
    Str(Cow<'a, str>),
    /// An array; holds its first element (finish_reasons takes the first).
    Arr(Option<Box<Val<'a>>>),
    Obj,
    /// The JSON text of a value kept whole (the `fingerprint` object).
    Raw(&'a str),
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Int(i128::from(v)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let first = seq.next_element_seed(ValSeed)?.map(Box::new);
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Val::Arr(first))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
        Ok(Val::Obj)
    }
}

struct ValSeed;

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// The keys tokenlord reads, declared once: their order is the slot index,
/// and [`slot_of`] is generated from the same list (a `match` on the string,
/// dispatched on length by the compiler, instead of a scan of 28 keys).
macro_rules! slot_keys {
    ($($key:literal),* $(,)?) => {
        const SLOT_KEYS: [&str; [$($key),*].len()] = [$($key),*];

        /// The slot of a key (its index in `SLOT_KEYS`).
        fn slot_of(key: &str) -> Option<usize> {
            Some(match key {
                $($key => const { slot($key) },)*
                _ => return None,
            })
        }
    };
}

slot_keys![
    "event_id",
    "ts",
    "user",
    "user_id",
    "enduser.id",
    "model",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "team",
    "app",
    "provider",
    "gen_ai.provider.name",
    "session_id",
    "gen_ai.conversation.id",
    "input_tokens",
    "gen_ai.usage.input_tokens",
    "output_tokens",
    "gen_ai.usage.output_tokens",
    "cached_input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "reasoning_tokens",
    "prompt",
    "output",
    "status",
    "finish_reason",
    "gen_ai.response.finish_reasons",
    "latency_ms",
    "fingerprint",
];

/// The slot of a key of `SLOT_KEYS`, at compile time (a typo does not compile).
const fn slot(key: &str) -> usize {
    let mut i = 0;
    while i < SLOT_KEYS.len() {
        let (a, b) = (SLOT_KEYS[i].as_bytes(), key.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a key of SLOT_KEYS")
}

/// The keys of a user (canonical first, then aliases in order); outcomes read the same.
pub(crate) const USER_KEYS: [&str; 3] = ["user", "user_id", "enduser.id"];
/// The keys of a session id; outcomes read the same.
pub(crate) const SESSION_KEYS: [&str; 2] = ["session_id", "gen_ai.conversation.id"];

const fn slots<const N: usize>(keys: [&str; N]) -> [usize; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = slot(keys[i]);
        i += 1;
    }
    out
}

/// Field → its slots (canonical first, then aliases in order).
const F_EVENT_ID: &[usize] = &[slot("event_id")];
const F_TS: &[usize] = &[slot("ts")];
const F_USER: &[usize] = &slots(USER_KEYS);
const F_MODEL: &[usize] = &[
    slot("model"),
    slot("gen_ai.request.model"),
    slot("gen_ai.response.model"),
];
const F_TEAM: &[usize] = &[slot("team")];
const F_APP: &[usize] = &[slot("app")];
const F_PROVIDER: &[usize] = &[slot("provider"), slot("gen_ai.provider.name")];
const F_SESSION: &[usize] = &slots(SESSION_KEYS);
const F_INPUT: &[usize] = &[slot("input_tokens"), slot("gen_ai.usage.input_tokens")];
const F_OUTPUT_TOKENS: &[usize] = &[slot("output_tokens"), slot("gen_ai.usage.output_tokens")];
const F_CACHED: &[usize] = &[
    slot("cached_input_tokens"),
    slot("gen_ai.usage.cache_read.input_tokens"),
];
const F_REASONING: &[usize] = &[slot("reasoning_tokens")];
const F_PROMPT: &[usize] = &[slot("prompt")];
const F_OUTPUT: &[usize] = &[slot("output")];
const F_STATUS: &[usize] = &[slot("status")];
const F_FINISH: &[usize] = &[
    slot("finish_reason"),
    slot("gen_ai.response.finish_reasons"),
];
const F_LATENCY: &[usize] = &[slot("latency_ms")];
const F_FINGERPRINT: &[usize] = &[slot("fingerprint")];
/// The slot whose value is kept as raw JSON (decoded by `fingerprint::Wire`).
const RAW_SLOT: usize = slot("fingerprint");

struct KeySlot(Option<usize>);

impl<'de> serde::Deserialize<'de> for KeySlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeySlot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeySlot, E> {
                Ok(KeySlot(slot_of(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The raw values of the known keys of one event object.
#[derive(Debug)]
pub struct Slots<'a>([Option<Val<'a>>; SLOT_KEYS.len()]);

impl<'de> serde::Deserialize<'de> for Slots<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor;
        impl<'de> Visitor<'de> for ObjVisitor {
            type Value = Slots<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slots<'de>, A::Error> {
                let mut slots: [Option<Val<'de>>; SLOT_KEYS.len()] = Default::default();
                while let Some(KeySlot(slot)) = map.next_key()? {
                    match slot {
                        Some(RAW_SLOT) => {
                            let raw: &'de RawValue = map.next_value()?;
                            slots[RAW_SLOT] = Some(match raw.get() {
                                "null" => Val::Null,
                                json => Val::Raw(json),
                            });
                        }
                        Some(i) => slots[i] = Some(map.next_value_seed(ValSeed)?),
                        None => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(Slots(slots))
            }
        }
        d.deserialize_map(ObjVisitor)
    }
}

impl<'a> Slots<'a> {
    /// Value of a field: the first of its keys whose value is not null.
    fn get(&self, keys: &[usize]) -> Option<&Val<'a>> {
        keys.iter()
            .filter_map(|i| self.0[*i].as_ref())
            .find(|v| !matches!(v, Val::Null))
    }
}

/// A validated event; token counts may still be missing (tokenized later).
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub ts: i64,
    pub user: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub team: Cow<'a, str>,
    pub app: Cow<'a, str>,
    pub provider: Cow<'a, str>,
    pub session_id: Cow<'a, str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub prompt: Option<Cow<'a, str>>,
    pub output: Option<Cow<'a, str>>,
    /// The gateway's fingerprint of the text it did not send.
    pub fingerprint: Option<Wire>,
    pub is_error: bool,
    pub finish_reason: Cow<'a, str>,
    pub latency_ms: Option<u32>,
}

fn take_str<'a>(
    slots: &Slots<'a>,
    keys: &[usize],
    f: Field,
    min: usize,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Reason> {
    let v = slots.get(keys).map(|v| match v {
        Val::Str(s) => Some(s),
        _ => None,
    });
    str_between(v, f, min, max)
}

/// A string (`Some(Some(s))`) of `min..=max` characters, if present
/// (`Some`); a present value that is not a string (`Some(None)`) or of
/// another length is `invalid_field:f`. Event fields and OTLP attributes.
pub(crate) fn str_between<'a>(
    v: Option<Option<&Cow<'a, str>>>,
    f: Field,
    min: usize,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Reason> {
    match v {
        None => Ok(None),
        Some(Some(s)) => {
            let n = s.chars().count();
            if n < min || n > max {
                Err(Reason::InvalidField(f))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(None) => Err(Reason::InvalidField(f)),
    }
}

fn required_str<'a>(
    slots: &Slots<'a>,
    keys: &[usize],
    f: Field,
    max: usize,
) -> Result<Cow<'a, str>, Reason> {
    take_str(slots, keys, f, 1, max)?.ok_or(Reason::MissingField(f))
}

fn optional_name<'a>(slots: &Slots<'a>, keys: &[usize], f: Field) -> Result<Cow<'a, str>, Reason> {
    Ok(take_str(slots, keys, f, 0, MAX_NAME_CHARS)?.unwrap_or(Cow::Borrowed("")))
}

fn take_int(slots: &Slots<'_>, keys: &[usize], f: Field, max: i128) -> Result<Option<u64>, Reason> {
    match slots.get(keys) {
        None => Ok(None),
        Some(Val::Int(v)) if (0..=max).contains(v) => Ok(Some(*v as u64)),
        Some(Val::Int(_)) => Err(Reason::OutOfRange(f)),
        Some(_) => Err(Reason::InvalidField(f)),
    }
}

fn take_text<'a>(
    slots: &Slots<'a>,
    keys: &[usize],
    f: Field,
) -> Result<Option<Cow<'a, str>>, Reason> {
    match slots.get(keys) {
        None => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reason::InvalidField(f)),
    }
}

fn take_ts(slots: &Slots<'_>) -> Result<i64, Reason> {
    let ts = match slots.get(F_TS) {
        None => return Err(Reason::MissingField(Field::Ts)),
        Some(Val::Int(v)) => {
            if (0..=i128::from(MAX_TS_MS)).contains(v) {
                *v as i64
            } else {
                return Err(Reason::OutOfRange(Field::Ts));
            }
        }
        Some(Val::Str(s)) => parse_rfc3339(s).ok_or(Reason::InvalidField(Field::Ts))?,
        Some(_) => return Err(Reason::InvalidField(Field::Ts)),
    };
    if (0..=MAX_TS_MS).contains(&ts) {
        Ok(ts)
    } else {
        Err(Reason::OutOfRange(Field::Ts))
    }
}

/// The cross-field bounds, checked once the counts are resolved (after
/// tokenization): cached ≤ input, reasoning ≤ output.
pub fn check_bounds(ev: &Event<'_>, input: u64, output: u64) -> Result<(), Reason> {
    if ev.cached_input_tokens.unwrap_or(0) > input {
        return Err(Reason::OutOfRange(Field::CachedInputTokens));
    }
    if ev.reasoning_tokens.unwrap_or(0) > output {
        return Err(Reason::OutOfRange(Field::ReasoningTokens));
    }
    Ok(())
}

/// Parses and validates one event object. `Err` is the rejection reason.
pub fn parse_event(raw: &[u8]) -> Result<Event<'_>, Reason> {
    let slots: Slots<'_> = serde_json::from_slice(raw).map_err(|e| {
        if e.is_data() {
            Reason::NotAnObject
        } else {
            Reason::InvalidJson
        }
    })?;
    let event_id = required_str(&slots, F_EVENT_ID, Field::EventId, MAX_ID_CHARS)?;
    let ts = take_ts(&slots)?;
    let user = required_str(&slots, F_USER, Field::User, MAX_USER_CHARS)?;
    let model = required_str(&slots, F_MODEL, Field::Model, MAX_NAME_CHARS)?;
    let team = optional_name(&slots, F_TEAM, Field::Team)?;
    let app = optional_name(&slots, F_APP, Field::App)?;
    let provider = optional_name(&slots, F_PROVIDER, Field::Provider)?;
    let session_id = optional_name(&slots, F_SESSION, Field::SessionId)?;
    let input_tokens = take_int(&slots, F_INPUT, Field::InputTokens, MAX_TOKENS)?;
    let output_tokens = take_int(&slots, F_OUTPUT_TOKENS, Field::OutputTokens, MAX_TOKENS)?;
    let prompt = take_text(&slots, F_PROMPT, Field::Prompt)?;
    let output = take_text(&slots, F_OUTPUT, Field::Output)?;
    let fingerprint = match slots.get(F_FINGERPRINT) {
        None => None,
        Some(Val::Raw(json)) => Some(Wire::decode(json)?),
        Some(_) => return Err(Reason::InvalidField(Field::Fingerprint)),
    };
    let cached = take_int(&slots, F_CACHED, Field::CachedInputTokens, MAX_TOKENS)?;
    let reasoning = take_int(&slots, F_REASONING, Field::ReasoningTokens, MAX_TOKENS)?;
    let status = match slots.get(F_STATUS) {
        None => false,
        Some(Val::Str(s)) if s == "ok" => false,
        Some(Val::Str(s)) if s == "error" => true,
        Some(_) => return Err(Reason::InvalidField(Field::Status)),
    };
    let finish_reason = match slots.get(F_FINISH) {
        None | Some(Val::Arr(None)) => Cow::Borrowed(""),
        Some(Val::Str(s)) => s.clone(),
        Some(Val::Arr(Some(first))) => match first.as_ref() {
            Val::Str(s) => s.clone(),
            _ => return Err(Reason::InvalidField(Field::FinishReason)),
        },
        Some(_) => return Err(Reason::InvalidField(Field::FinishReason)),
    };
    let latency_ms = take_int(&slots, F_LATENCY, Field::LatencyMs, MAX_LATENCY)?.map(|v| v as u32);
    if input_tokens.is_none() && output_tokens.is_none() && prompt.is_none() && output.is_none() {
        return Err(Reason::MissingUsage);
    }
    Ok(Event {
        event_id,
        ts,
        user,
        model,
        team,
        app,
        provider,
        session_id,
        input_tokens,
        output_tokens,
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
        prompt,
        output,
        fingerprint,
        is_error: status,
        finish_reason,
        latency_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_of_agrees_with_slot_keys() {
        for (i, k) in SLOT_KEYS.iter().enumerate() {
            assert_eq!(slot_of(k), Some(i), "{k}");
        }
        assert_eq!(slot_of("Event_id"), None);
        assert_eq!(slot_of(""), None);
    }

    #[test]
    fn single_object_fast_path_agrees_with_split() {
        let cases: &[&[u8]] = &[
            br#"{"event_id":"a","ts":1,"user":"u","model":"m","input_tokens":1}"#,
            b"\xEF\xBB\xBF  {\"event_id\":\"a\",\"ts\":1,\"user\":\"u\",\"model\":\"m\",\"input_tokens\":1}\n",
            b"{\"event_id\":\"a\",\"ts\":1,\"user\":\"u\",\"model\":\"m\",\"input_tokens\":1}\n{\"event_id\":\"b\"}",
            b"{\"a\":1} x",
            b"{}",
            b"[{}]",
        ];
        for v in cases {
            let fast = single_object(v, 1 << 20).and_then(|b| parse_event(b).ok().map(|_| b));
            if let Some(body) = fast {
                let split = split_message(v, 1 << 20);
                assert!(
                    matches!(split.as_slice(), [Element::Event { json, raw }] if *json == body && *raw == *v),
                    "{:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
        assert!(single_object(b"{}", 1).is_none());
    }

    fn reason(raw: &str) -> Option<String> {
        parse_event(raw.as_bytes()).err().map(|r| r.to_string())
    }

    const OK: &str =
        r#"{"event_id":"e1","ts":"2024-01-01T00:00:00Z","user":"u","model":"m","input_tokens":1}"#;

    #[test]
    fn valid_event_with_aliases() {
        let ev = parse_event(
            br#"{"event_id":"e","ts":1700000000000,"enduser.id":"ann","gen_ai.request.model":"gpt-4o",
                "gen_ai.usage.input_tokens":10,"gen_ai.usage.output_tokens":5,"gen_ai.provider.name":"openai",
                "gen_ai.conversation.id":"s1","gen_ai.response.finish_reasons":["stop","length"],"x":{"deep":[1]}}"#,
        )
        .unwrap();
        assert_eq!(ev.user, "ann");
        assert_eq!(ev.model, "gpt-4o");
        assert_eq!((ev.input_tokens, ev.output_tokens), (Some(10), Some(5)));
        assert_eq!(
            (ev.provider.as_ref(), ev.session_id.as_ref()),
            ("openai", "s1")
        );
        assert_eq!(ev.finish_reason, "stop");
        assert!(
            matches!(ev.user, Cow::Borrowed(_)),
            "strings are borrowed from the input"
        );
    }

    #[test]
    fn canonical_wins_and_null_is_missing() {
        let ev = parse_event(br#"{"event_id":"e","ts":0,"user":null,"user_id":"b","enduser.id":"c","model":"m","input_tokens":1}"#)
            .unwrap();
        assert_eq!(ev.user, "b");
        let ev = parse_event(br#"{"event_id":"e","ts":0,"user":"a","user_id":"b","model":"m","input_tokens":1,"user":"z"}"#)
            .unwrap();
        assert_eq!(ev.user, "z", "duplicate keys: last wins");
    }

    #[test]
    fn every_field_reason() {
        assert_eq!(reason(OK), None);
        let cases: &[(&str, &str)] = &[
            (
                r#"{"ts":0,"user":"u","model":"m","input_tokens":1}"#,
                "missing_field:event_id",
            ),
            (
                r#"{"event_id":"","ts":0,"user":"u","model":"m","input_tokens":1}"#,
                "invalid_field:event_id",
            ),
            (
                r#"{"event_id":7,"ts":0,"user":"u","model":"m","input_tokens":1}"#,
                "invalid_field:event_id",
            ),
            (
                r#"{"event_id":"e","user":"u","model":"m","input_tokens":1}"#,
                "missing_field:ts",
            ),
            (
                r#"{"event_id":"e","ts":1.5,"user":"u","model":"m","input_tokens":1}"#,
                "invalid_field:ts",
            ),
            (
                r#"{"event_id":"e","ts":"yesterday","user":"u","model":"m","input_tokens":1}"#,
                "invalid_field:ts",
            ),
            (
                r#"{"event_id":"e","ts":-1,"user":"u","model":"m","input_tokens":1}"#,
                "out_of_range:ts",
            ),
            (
                r#"{"event_id":"e","ts":"1969-12-31T23:59:59Z","user":"u","model":"m","input_tokens":1}"#,
                "out_of_range:ts",
            ),
            (
                r#"{"event_id":"e","ts":0,"model":"m","input_tokens":1}"#,
                "missing_field:user",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":["u"],"model":"m","input_tokens":1}"#,
                "invalid_field:user",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","input_tokens":1}"#,
                "missing_field:model",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","team":5,"input_tokens":1}"#,
                "invalid_field:team",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":-1}"#,
                "out_of_range:input_tokens",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1000000001}"#,
                "out_of_range:input_tokens",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1.0}"#,
                "invalid_field:input_tokens",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":"3"}"#,
                "invalid_field:input_tokens",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","output_tokens":99999999999999999999999}"#,
                "invalid_field:output_tokens",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","prompt":7}"#,
                "invalid_field:prompt",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1,"status":"failed"}"#,
                "invalid_field:status",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1,"finish_reason":[3]}"#,
                "invalid_field:finish_reason",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1,"latency_ms":-5}"#,
                "out_of_range:latency_ms",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m"}"#,
                "missing_usage",
            ),
            (
                r#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1,"cached_input_tokens":-2}"#,
                "out_of_range:cached_input_tokens",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(reason(raw).as_deref(), Some(*want), "{raw}");
        }
        let long_id = format!(
            r#"{{"event_id":"{}","ts":0,"user":"u","model":"m","input_tokens":1}}"#,
            "é".repeat(129)
        );
        assert_eq!(reason(&long_id).as_deref(), Some("invalid_field:event_id"));
        let ok_id = format!(
            r#"{{"event_id":"{}","ts":0,"user":"u","model":"m","input_tokens":1}}"#,
            "é".repeat(128)
        );
        assert_eq!(reason(&ok_id), None, "limits count characters, not bytes");
    }

    #[test]
    fn cross_field_bounds() {
        let ev = parse_event(br#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":5,"cached_input_tokens":6}"#).unwrap();
        assert_eq!(
            check_bounds(&ev, 5, 0),
            Err(Reason::OutOfRange(Field::CachedInputTokens))
        );
        let ev = parse_event(br#"{"event_id":"e","ts":0,"user":"u","model":"m","output_tokens":5,"reasoning_tokens":5}"#).unwrap();
        assert_eq!(check_bounds(&ev, 0, 5), Ok(()));
    }

    fn kinds(v: &[u8]) -> Vec<String> {
        split_message(v, 1 << 20)
            .into_iter()
            .map(|e| match e {
                Element::Event { json, .. } => format!("event:{}", String::from_utf8_lossy(json)),
                Element::Rejected(r, _) => r.to_string(),
            })
            .collect()
    }

    #[test]
    fn message_shapes() {
        assert_eq!(kinds(br#"{"a":1}"#), vec![r#"event:{"a":1}"#]);
        assert_eq!(kinds(b"\xEF\xBB\xBF{\"a\":1}").len(), 1);
        assert_eq!(
            kinds(br#"[{"a":1}, 3, {"b":2}]"#),
            vec![r#"event:{"a":1}"#, "not_an_object", r#"event:{"b":2}"#]
        );
        assert_eq!(
            kinds(b"{\"a\":1}\n\n{\"b\":2}\r\n"),
            vec!["event:{\"a\":1}", "event:{\"b\":2}\r"]
        );
        assert_eq!(
            kinds(b"{\"a\":1}\nnope\n7"),
            vec!["event:{\"a\":1}", "invalid_json", "not_an_object"]
        );
        assert_eq!(kinds(b"nope\nnope"), vec!["invalid_json"]);
        assert_eq!(kinds(b"{\"a\":1"), vec!["invalid_json"]);
        assert_eq!(kinds(b"   "), vec!["invalid_json"]);
        assert_eq!(kinds(b"\"str\""), vec!["not_an_object"]);
        assert_eq!(kinds(b"[]"), Vec::<String>::new());
        for bad in [
            &b"{\"a\":NaN}"[..],
            b"{\"a\":1e309}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
        ] {
            assert_eq!(
                parse_event(bad).err(),
                Some(Reason::InvalidJson),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(kinds(b"[{\"a\":1}, 1e309]"), vec!["invalid_json"]);
        assert_eq!(
            kinds(b"{\"a\":1}\n1e309"),
            vec!["event:{\"a\":1}", "invalid_json"]
        );
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(500), "]".repeat(500));
        assert_eq!(
            parse_event(deep.as_bytes()).err(),
            Some(Reason::InvalidJson)
        );
        assert_eq!(split_message(&[b' '; 11], 10).len(), 1);
        assert!(matches!(
            split_message(&[b' '; 11], 10)[0],
            Element::Rejected(Reason::TooLarge, _)
        ));
    }
}
