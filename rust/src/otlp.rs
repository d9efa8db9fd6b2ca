//! OpenTelemetry traces as usage events (docs/gateways.md).
//!
//! A record is one `ExportTraceServiceRequest` as the Collector's kafka
//! exporter writes it: protobuf (`otlp_proto`) or OTLP/JSON (`otlp_json`),
//! told apart by content. Every resource → scope → span is walked; a GenAI
//! span (OTel GenAI `gen_ai.*` names, current and deprecated, or OpenInference
//! `llm.*`) becomes one [`Event`] that then takes the events topic's path
//! (counts, bounds, dedupe, windows, waste) in `batch/`; other spans are
//! [`Item::Skipped`]. A record that does not decode is one rejection.
//!
//! Bounded work on hostile input: records above the size limit are rejected
//! before any decoding; the protobuf reader is a flat, zero-copy walk of the
//! known message path (no recursion: array values are read one level deep),
//! skipping what it does not need by length; JSON goes through serde_json,
//! whose nesting limit turns deep input into `invalid_json`. Memory is linear
//! in the record's size.

use std::borrow::Cow;
use std::fmt;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Field, Reason};
use crate::event::{str_between, Event, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_TOKENS, MAX_USER_CHARS};
use crate::time::MAX_TS_MS;

/// What one span of a record became.
#[derive(Debug)]
pub enum Item<'a> {
    /// A GenAI span as an event; `raw` is the span's own bytes (its protobuf
    /// `Span` message or its JSON object), what a later rejection reports.
    Event(Box<Event<'a>>, &'a [u8]),
    /// A GenAI span that is not a valid usage event, or (alone) a record that
    /// does not decode (raw = the whole record).
    Rejected(Reason, &'a [u8]),
    /// Not a GenAI span (counted, not dead-lettered).
    Skipped,
}

// -- attributes ------------------------------------------------------------------------

/// An attribute value as far as tokenlord reads it.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    /// An array value; holds its first element (finish reasons take the first).
    Arr(Option<Box<Val<'a>>>),
    /// bool, bytes, key-value list, or a nested array: never a field tokenlord reads.
    Other,
}

/// Attribute keys tokenlord reads; the order is the slot index.
const KEYS: [&str; 29] = [
    "user.id",
    "enduser.id",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
    "gen_ai.conversation.id",
    "session.id",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.response.finish_reasons",
    "gen_ai.operation.name",
    "openinference.span.kind",
    "tokenlord.team",
    "service.namespace",
    "tokenlord.app",
    "service.name",
    "llm.token_count.total",
];

// Field → its attribute slots, in precedence order (within one layer).
const A_USER: &[usize] = &[0, 1];
const A_MODEL: &[usize] = &[2, 3, 4];
const A_PROVIDER: &[usize] = &[5, 6, 7, 8];
const A_SESSION: &[usize] = &[9, 10];
const A_INPUT: &[usize] = &[11, 12, 13];
const A_OUTPUT: &[usize] = &[14, 15, 16];
const A_CACHED: &[usize] = &[17, 18];
const A_REASONING: &[usize] = &[19, 20];
const A_FINISH: &[usize] = &[21];
const A_OPERATION: usize = 22;
const A_OI_KIND: usize = 23;
const A_TEAM: &[usize] = &[24, 25];
const A_APP: &[usize] = &[26, 27];
const A_TOTAL: usize = 28;

fn slot_of(key: &[u8]) -> Option<usize> {
    KEYS.iter().position(|k| k.as_bytes() == key)
}

/// The attributes of one layer (resource, scope or span) that tokenlord reads.
#[derive(Debug, Default)]
struct Attrs<'a>([Option<Val<'a>>; KEYS.len()]);

impl<'a> Attrs<'a> {
    fn set(&mut self, key: &[u8], val: Option<Val<'a>>) {
        if let (Some(i), Some(v)) = (slot_of(key), val) {
            self.0[i] = Some(v); // duplicate keys: the last wins
        }
    }

    fn has(&self, slot: usize) -> bool {
        self.0[slot].is_some()
    }

    fn str(&self, slot: usize) -> Option<&str> {
        match &self.0[slot] {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// Span, scope and resource attributes: the first layer holding one of a
/// field's keys gives its value (span attributes override the resource's).
struct Layers<'s, 'a>([&'s Attrs<'a>; 3]);

impl<'a> Layers<'_, 'a> {
    fn get(&self, slots: &[usize]) -> Option<&Val<'a>> {
        self.0
            .iter()
            .find_map(|layer| slots.iter().find_map(|s| layer.0[*s].as_ref()))
    }
}

/// Whether a span reports a model call: it names a model or counts tokens,
/// and is not an agent, tool or other non-model span (their usage, when they
/// carry any, sums the model calls below them, which count themselves).
fn is_genai(span: &Attrs<'_>) -> bool {
    let usage = (2..=4).chain(11..=16).chain([A_TOTAL]).any(|s| span.has(s));
    if !usage {
        return false;
    }
    if let Some(op) = span.str(A_OPERATION) {
        if matches!(op, "invoke_agent" | "create_agent" | "execute_tool") {
            return false;
        }
    }
    match span.str(A_OI_KIND) {
        None => true,
        Some(kind) => kind.eq_ignore_ascii_case("LLM") || kind.eq_ignore_ascii_case("EMBEDDING"),
    }
}

// -- span → event ------------------------------------------------------------------------

/// The span fields outside the attributes.
#[derive(Debug, Default)]
struct SpanHead {
    trace_id: Option<Vec<u8>>,
    span_id: Option<Vec<u8>>,
    /// Set when an id was present but not decodable (JSON: not hex/base64).
    bad_id: bool,
    start_ns: u64,
    end_ns: u64,
    error: bool,
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn event_id(head: &SpanHead) -> Result<String, Reason> {
    let bad = Reason::InvalidField(Field::EventId);
    if head.bad_id {
        return Err(bad);
    }
    let (Some(trace), Some(span)) = (&head.trace_id, &head.span_id) else {
        return Err(Reason::MissingField(Field::EventId));
    };
    if trace.is_empty() || span.is_empty() {
        return Err(Reason::MissingField(Field::EventId));
    }
    // W3C trace context: 16 and 8 bytes, not all zero.
    let valid = |id: &[u8], n: usize| id.len() == n && id.iter().any(|b| *b != 0);
    if !valid(trace, 16) || !valid(span, 8) {
        return Err(bad);
    }
    let mut id = String::with_capacity(48);
    hex(trace, &mut id);
    hex(span, &mut id);
    Ok(id)
}

fn text<'a>(
    l: &Layers<'_, 'a>,
    slots: &[usize],
    f: Field,
    min: usize,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Reason> {
    let v = l.get(slots).map(|v| match v {
        Val::Str(s) => Some(s),
        _ => None,
    });
    str_between(v, f, min, max)
}

fn name<'a>(l: &Layers<'_, 'a>, slots: &[usize], f: Field) -> Result<Cow<'a, str>, Reason> {
    Ok(text(l, slots, f, 0, MAX_NAME_CHARS)?.unwrap_or(Cow::Borrowed("")))
}

fn count(l: &Layers<'_, '_>, slots: &[usize], f: Field) -> Result<Option<u64>, Reason> {
    let n = match l.get(slots) {
        None => return Ok(None),
        Some(Val::Int(v)) => i128::from(*v),
        // An integral double (some SDKs send numbers as doubles).
        Some(Val::Double(v)) if v.fract() == 0.0 && v.abs() < 1e18 => *v as i128,
        Some(_) => return Err(Reason::InvalidField(f)),
    };
    if (0..=MAX_TOKENS).contains(&n) {
        Ok(Some(n as u64))
    } else {
        Err(Reason::OutOfRange(f))
    }
}

fn to_event<'a>(head: &SpanHead, l: &Layers<'_, 'a>) -> Result<Event<'a>, Reason> {
    let event_id = event_id(head)?;
    debug_assert!(event_id.len() <= MAX_ID_CHARS);
    if head.end_ns == 0 {
        return Err(Reason::MissingField(Field::Ts));
    }
    let ts = i64::try_from(head.end_ns / 1_000_000).unwrap_or(i64::MAX);
    if ts > MAX_TS_MS {
        return Err(Reason::OutOfRange(Field::Ts));
    }
    let user = text(l, A_USER, Field::User, 1, MAX_USER_CHARS)?
        .ok_or(Reason::MissingField(Field::User))?;
    let model = text(l, A_MODEL, Field::Model, 1, MAX_NAME_CHARS)?
        .ok_or(Reason::MissingField(Field::Model))?;
    let team = name(l, A_TEAM, Field::Team)?;
    let app = name(l, A_APP, Field::App)?;
    let provider = name(l, A_PROVIDER, Field::Provider)?;
    let session_id = name(l, A_SESSION, Field::SessionId)?;
    let input_tokens = count(l, A_INPUT, Field::InputTokens)?;
    let output_tokens = count(l, A_OUTPUT, Field::OutputTokens)?;
    let cached_input_tokens = count(l, A_CACHED, Field::CachedInputTokens)?;
    let reasoning_tokens = count(l, A_REASONING, Field::ReasoningTokens)?;
    let finish_reason = match l.get(A_FINISH) {
        None | Some(Val::Arr(None)) => Cow::Borrowed(""),
        Some(Val::Str(s)) => s.clone(),
        Some(Val::Arr(Some(first))) => match first.as_ref() {
            Val::Str(s) => s.clone(),
            _ => return Err(Reason::InvalidField(Field::FinishReason)),
        },
        Some(_) => return Err(Reason::InvalidField(Field::FinishReason)),
    };
    if finish_reason.chars().count() > MAX_NAME_CHARS {
        return Err(Reason::InvalidField(Field::FinishReason));
    }
    if input_tokens.is_none() && output_tokens.is_none() {
        return Err(Reason::MissingUsage);
    }
    let latency_ms = (head.start_ns > 0 && head.end_ns >= head.start_ns)
        .then(|| (head.end_ns - head.start_ns) / 1_000_000)
        .and_then(|ms| u32::try_from(ms).ok())
        .filter(|ms| *ms <= i32::MAX as u32);
    Ok(Event {
        event_id: Cow::Owned(event_id),
        ts,
        user,
        model,
        team,
        app,
        provider,
        session_id,
        input_tokens,
        output_tokens,
        cached_input_tokens,
        reasoning_tokens,
        prompt: None,
        output: None,
        fingerprint: None,
        is_error: head.error,
        finish_reason,
        latency_ms,
    })
}

fn span_item<'a>(
    head: &SpanHead,
    span: &Attrs<'a>,
    scope: &Attrs<'a>,
    resource: &Attrs<'a>,
    raw: &'a [u8],
) -> Item<'a> {
    if !is_genai(span) {
        return Item::Skipped;
    }
    match to_event(head, &Layers([span, scope, resource])) {
        Ok(ev) => Item::Event(Box::new(ev), raw),
        Err(r) => Item::Rejected(r, raw),
    }
}

// -- the record ----------------------------------------------------------------------------

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Decodes one record into its spans' items, in order (resource, scope, span).
/// A record that decodes neither as OTLP protobuf nor as OTLP/JSON is one
/// rejection with the whole record: `invalid_json` (the contract's code for
/// an undecodable message; docs/gateways.md), `not_an_object` for JSON that
/// is not an `ExportTraceServiceRequest`, `too_large` above `max_bytes`.
pub fn decode(value: &[u8], max_bytes: usize) -> Vec<Item<'_>> {
    if value.len() > max_bytes {
        return vec![Item::Rejected(Reason::TooLarge, value)];
    }
    let body = value.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(value);
    let start = body.iter().position(|c| !is_ws(*c));
    let Some(start) = start else {
        // Empty (or blank): not a request a Collector writes.
        return vec![Item::Rejected(Reason::InvalidJson, value)];
    };
    // Told apart by content: a protobuf request never starts with `{` (0x7B
    // would be field 15 as a group). One that starts with bytes JSON calls
    // whitespace (0x0A is field 1, the usual first byte) is tried as protobuf
    // first, then as JSON.
    if body[0] != b'{' {
        let mut out = Vec::new();
        if proto::request(body, &mut out).is_ok() {
            return out;
        }
        if body[start] != b'{' {
            return vec![Item::Rejected(Reason::InvalidJson, value)];
        }
    }
    match json::request(&body[start..]) {
        Ok(out) => out,
        Err(r) => vec![Item::Rejected(r, value)],
    }
}

// -- protobuf ----------------------------------------------------------------------------

/// A flat reader of the protobuf wire format over the known message path of
/// `opentelemetry/proto/collector/trace/v1/trace_service.proto`.
mod proto {
    use super::*;

    /// Any wire-level or type error: the record does not decode.
    #[derive(Debug)]
    pub struct Bad;

    enum Wire<'a> {
        Varint(u64),
        Fixed64(u64),
        Len(&'a [u8]),
        Fixed32,
    }

    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn new(buf: &'a [u8]) -> Self {
            Reader { buf, pos: 0 }
        }

        fn varint(&mut self) -> Result<u64, Bad> {
            let mut v: u64 = 0;
            for i in 0..10 {
                let b = *self.buf.get(self.pos).ok_or(Bad)?;
                self.pos += 1;
                if i == 9 && b > 1 {
                    return Err(Bad);
                }
                v |= u64::from(b & 0x7F) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err(Bad)
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
            let end = self.pos.checked_add(n).ok_or(Bad)?;
            let s = self.buf.get(self.pos..end).ok_or(Bad)?;
            self.pos = end;
            Ok(s)
        }

        /// The next field: (number, value), or None at the end.
        fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, Bad> {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let tag = self.varint()?;
            let field = tag >> 3;
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return Err(Bad);
            }
            let wire = match tag & 7 {
                0 => Wire::Varint(self.varint()?),
                1 => {
                    let b = self.take(8)?;
                    Wire::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| Bad)?))
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| Bad)?;
                    Wire::Len(self.take(n)?)
                }
                5 => {
                    self.take(4)?;
                    Wire::Fixed32
                }
                _ => return Err(Bad), // groups (3, 4) and undefined types
            };
            Ok(Some((field, wire)))
        }
    }

    fn utf8(b: &[u8]) -> Result<&str, Bad> {
        std::str::from_utf8(b).map_err(|_| Bad)
    }

    /// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }`:
    /// any other field means this is not such a request.
    pub fn request<'a>(buf: &'a [u8], out: &mut Vec<Item<'a>>) -> Result<(), Bad> {
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (1, Wire::Len(b)) => resource_spans(b, out)?,
                _ => return Err(Bad),
            }
        }
        Ok(())
    }

    /// `ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }`
    fn resource_spans<'a>(buf: &'a [u8], out: &mut Vec<Item<'a>>) -> Result<(), Bad> {
        let mut resource = Attrs::default();
        let mut scopes: Vec<&'a [u8]> = Vec::new();
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (1, Wire::Len(b)) => attributes_of(b, 1, &mut resource)?,
                (2, Wire::Len(b)) => scopes.push(b),
                (1 | 2, _) => return Err(Bad),
                _ => {}
            }
        }
        for s in scopes {
            scope_spans(s, &resource, out)?;
        }
        Ok(())
    }

    /// `ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }`
    /// (`InstrumentationScope.attributes` = 3).
    fn scope_spans<'a>(
        buf: &'a [u8],
        resource: &Attrs<'a>,
        out: &mut Vec<Item<'a>>,
    ) -> Result<(), Bad> {
        let mut scope = Attrs::default();
        let mut spans: Vec<&'a [u8]> = Vec::new();
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (1, Wire::Len(b)) => attributes_of(b, 3, &mut scope)?,
                (2, Wire::Len(b)) => spans.push(b),
                (1 | 2, _) => return Err(Bad),
                _ => {}
            }
        }
        for s in spans {
            let (head, attrs) = span(s)?;
            out.push(span_item(&head, &attrs, &scope, resource, s));
        }
        Ok(())
    }

    /// The `KeyValue` attributes (field `field`) of a Resource or a scope.
    fn attributes_of<'a>(buf: &'a [u8], field: u64, attrs: &mut Attrs<'a>) -> Result<(), Bad> {
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (f, Wire::Len(b)) if f == field => key_value(b, attrs)?,
                (f, _) if f == field => return Err(Bad),
                _ => {}
            }
        }
        Ok(())
    }

    /// `Span`: trace_id 1, span_id 2, start 7 and end 8 (fixed64), attributes
    /// 9, status 15 (`Status.code` = 3, 2 = ERROR).
    fn span(buf: &[u8]) -> Result<(SpanHead, Attrs<'_>), Bad> {
        let mut head = SpanHead::default();
        let mut attrs = Attrs::default();
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (1, Wire::Len(b)) => head.trace_id = Some(b.to_vec()),
                (2, Wire::Len(b)) => head.span_id = Some(b.to_vec()),
                (7, Wire::Fixed64(v)) => head.start_ns = v,
                (8, Wire::Fixed64(v)) => head.end_ns = v,
                (9, Wire::Len(b)) => key_value(b, &mut attrs)?,
                (15, Wire::Len(b)) => {
                    let mut s = Reader::new(b);
                    while let Some((f, w)) = s.next()? {
                        match (f, w) {
                            (3, Wire::Varint(code)) => head.error = code == 2,
                            (3, _) => return Err(Bad),
                            _ => {}
                        }
                    }
                }
                (1 | 2 | 7 | 8 | 9 | 15, _) => return Err(Bad),
                _ => {}
            }
        }
        Ok((head, attrs))
    }

    /// `KeyValue { string key = 1; AnyValue value = 2; }`; the value is read
    /// only for the keys tokenlord knows.
    fn key_value<'a>(buf: &'a [u8], attrs: &mut Attrs<'a>) -> Result<(), Bad> {
        let (mut key, mut value): (&[u8], Option<&'a [u8]>) = (b"", None);
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            match (f, w) {
                (1, Wire::Len(b)) => key = b,
                (2, Wire::Len(b)) => value = Some(b),
                (1 | 2, _) => return Err(Bad),
                _ => {}
            }
        }
        if slot_of(key).is_some() {
            let v = match value {
                Some(b) => any_value(b, true)?,
                None => None,
            };
            attrs.set(key, v);
        }
        Ok(())
    }

    /// `AnyValue` (oneof: string 1, bool 2, int 3, double 4, array 5,
    /// kvlist 6, bytes 7); None when no value is set. An array keeps its first
    /// element, itself read without going deeper.
    fn any_value(buf: &[u8], outer: bool) -> Result<Option<Val<'_>>, Bad> {
        let mut v = None;
        let mut r = Reader::new(buf);
        while let Some((f, w)) = r.next()? {
            v = Some(match (f, w) {
                (1, Wire::Len(b)) => Val::Str(Cow::Borrowed(utf8(b)?)),
                (2, Wire::Varint(_)) => Val::Other,
                (3, Wire::Varint(n)) => Val::Int(n as i64),
                (4, Wire::Fixed64(bits)) => Val::Double(f64::from_bits(bits)),
                (5, Wire::Len(b)) if outer => {
                    let mut first = None;
                    let mut a = Reader::new(b);
                    while let Some((f, w)) = a.next()? {
                        match (f, w) {
                            (1, Wire::Len(e)) if first.is_none() => {
                                first = Some(any_value(e, false)?.unwrap_or(Val::Other));
                            }
                            (1, Wire::Len(_)) => {}
                            (1, _) => return Err(Bad),
                            _ => {}
                        }
                    }
                    Val::Arr(first.map(Box::new))
                }
                (5..=7, Wire::Len(_)) => Val::Other,
                (1..=7, _) => return Err(Bad),
                _ => continue,
            });
        }
        Ok(v)
    }
}

// -- OTLP/JSON -------------------------------------------------------------------------------

/// OTLP/JSON: lowerCamelCase keys (snake_case accepted too), hex ids (base64
/// accepted: told apart by length), integer enums, 64-bit integers as decimal
/// strings or numbers.
mod json {
    use super::*;
    use std::marker::PhantomData;

    /// A string, borrowed from the input when it has no escapes.
    struct Str<'a>(Cow<'a, str>);

    impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a>(PhantomData<&'a ()>);
            impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                type Value = Str<'a>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                    Ok(Str(Cow::Borrowed(v)))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                    Ok(Str(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V(PhantomData))
        }
    }

    /// An integer as a JSON number or a decimal string (`"123"`).
    struct Int(i128);

    impl<'de> Deserialize<'de> for Int {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Int;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an integer or a decimal string")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                    Ok(Int(i128::from(v)))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                    Ok(Int(i128::from(v)))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                    if v.fract() == 0.0 && v.abs() < 1e18 {
                        Ok(Int(v as i128))
                    } else {
                        Err(E::custom("not an integer"))
                    }
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                    if v.is_empty() || v.len() > 20 {
                        return Err(E::custom("not a decimal integer"));
                    }
                    v.parse::<i128>()
                        .map(Int)
                        .map_err(|_| E::custom("not a decimal integer"))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A double as a number, or a string (`"NaN"`, `"Infinity"`, decimal).
    struct Double(f64);

    impl<'de> Deserialize<'de> for Double {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Double;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a number")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                    Ok(Double(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                    Ok(Double(v as f64))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                    Ok(Double(v))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                    v.parse::<f64>()
                        .map(Double)
                        .map_err(|_| E::custom("not a number"))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// `status.code`: an integer, or the enum's name.
    struct Code(bool);

    impl<'de> Deserialize<'de> for Code {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Code;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a status code")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                    Ok(Code(v == 2))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                    Ok(Code(v == 2))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                    Ok(Code(v == "STATUS_CODE_ERROR"))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// The first element of an array (the rest is checked and skipped).
    struct First<'a>(Option<Box<AnyValue<'a>>>);

    impl<'de: 'a, 'a> Deserialize<'de> for First<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a>(PhantomData<&'a ()>);
            impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                type Value = First<'a>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an array")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<'a>, A::Error> {
                    let first = seq.next_element::<AnyValue<'a>>()?.map(Box::new);
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(First(first))
                }
            }
            d.deserialize_seq(V(PhantomData))
        }
    }

    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow, rename = "resourceSpans", alias = "resource_spans")]
        resource_spans: Option<Vec<ResourceSpans<'a>>>,
    }

    #[derive(Deserialize)]
    struct ResourceSpans<'a> {
        #[serde(borrow)]
        resource: Option<WithAttributes<'a>>,
        #[serde(borrow, rename = "scopeSpans", alias = "scope_spans")]
        scope_spans: Option<Vec<ScopeSpans<'a>>>,
    }

    #[derive(Deserialize)]
    struct WithAttributes<'a> {
        #[serde(borrow)]
        attributes: Option<Vec<KeyValue<'a>>>,
    }

    #[derive(Deserialize)]
    struct ScopeSpans<'a> {
        #[serde(borrow)]
        scope: Option<WithAttributes<'a>>,
        #[serde(borrow)]
        spans: Option<Vec<&'a RawValue>>,
    }

    #[derive(Deserialize)]
    struct Span<'a> {
        #[serde(borrow, rename = "traceId", alias = "trace_id")]
        trace_id: Option<Str<'a>>,
        #[serde(borrow, rename = "spanId", alias = "span_id")]
        span_id: Option<Str<'a>>,
        #[serde(rename = "startTimeUnixNano", alias = "start_time_unix_nano")]
        start: Option<Int>,
        #[serde(rename = "endTimeUnixNano", alias = "end_time_unix_nano")]
        end: Option<Int>,
        #[serde(borrow)]
        attributes: Option<Vec<KeyValue<'a>>>,
        status: Option<Status>,
    }

    #[derive(Deserialize)]
    struct Status {
        code: Option<Code>,
    }

    #[derive(Deserialize)]
    struct KeyValue<'a> {
        #[serde(borrow)]
        key: Str<'a>,
        #[serde(borrow)]
        value: Option<AnyValue<'a>>,
    }

    #[derive(Deserialize)]
    struct AnyValue<'a> {
        #[serde(borrow, rename = "stringValue", alias = "string_value")]
        string: Option<Str<'a>>,
        #[serde(rename = "boolValue", alias = "bool_value")]
        boolean: Option<bool>,
        #[serde(rename = "intValue", alias = "int_value")]
        int: Option<Int>,
        #[serde(rename = "doubleValue", alias = "double_value")]
        double: Option<Double>,
        #[serde(borrow, rename = "arrayValue", alias = "array_value")]
        array: Option<ArrayValue<'a>>,
        #[serde(rename = "kvlistValue", alias = "kvlist_value")]
        kvlist: Option<IgnoredAny>,
        #[serde(rename = "bytesValue", alias = "bytes_value")]
        bytes: Option<IgnoredAny>,
    }

    #[derive(Deserialize)]
    struct ArrayValue<'a> {
        #[serde(borrow)]
        values: Option<First<'a>>,
    }

    impl<'a> AnyValue<'a> {
        fn into_val(self, outer: bool) -> Option<Val<'a>> {
            if let Some(s) = self.string {
                return Some(Val::Str(s.0));
            }
            if let Some(Int(n)) = self.int {
                return Some(i64::try_from(n).map_or(Val::Other, Val::Int));
            }
            if let Some(Double(x)) = self.double {
                return Some(Val::Double(x));
            }
            if let Some(a) = self.array {
                if !outer {
                    return Some(Val::Other);
                }
                let first = a.values.and_then(|f| f.0);
                return Some(Val::Arr(
                    first.map(|v| Box::new(v.into_val(false).unwrap_or(Val::Other))),
                ));
            }
            (self.boolean.is_some() || self.kvlist.is_some() || self.bytes.is_some())
                .then_some(Val::Other)
        }
    }

    fn attrs<'a>(kvs: Option<Vec<KeyValue<'a>>>, into: &mut Attrs<'a>) {
        for kv in kvs.unwrap_or_default() {
            let key = kv.key.0;
            if slot_of(key.as_bytes()).is_some() {
                into.set(key.as_bytes(), kv.value.and_then(|v| v.into_val(true)));
            }
        }
    }

    /// Hex (the OTLP/JSON rule) or base64 (protobuf's own JSON mapping), told
    /// apart by length; `Err` when neither.
    fn id(s: &str, bytes: usize) -> Result<Vec<u8>, ()> {
        if s.is_empty() {
            return Ok(Vec::new());
        }
        if s.len() == 2 * bytes {
            let digit = |c: u8| (c as char).to_digit(16).ok_or(());
            return s
                .as_bytes()
                .chunks(2)
                .map(|p| Ok((digit(p[0])? * 16 + digit(p[1])?) as u8))
                .collect();
        }
        match BASE64_STANDARD.decode(s) {
            Ok(b) if b.len() == bytes => Ok(b),
            _ => Err(()),
        }
    }

    fn nanos(v: Option<Int>) -> Result<u64, Reason> {
        match v {
            None => Ok(0),
            Some(Int(n)) => u64::try_from(n).map_err(|_| Reason::InvalidJson),
        }
    }

    pub fn request(body: &[u8]) -> Result<Vec<Item<'_>>, Reason> {
        let req: Request<'_> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                Reason::NotAnObject
            } else {
                Reason::InvalidJson
            }
        })?;
        // Valid JSON but no `resourceSpans`: not an ExportTraceServiceRequest
        // (e.g. a usage event sent to the traces topic).
        let resource_spans = req.resource_spans.ok_or(Reason::NotAnObject)?;
        let mut out = Vec::new();
        for rs in resource_spans {
            let mut resource = Attrs::default();
            attrs(rs.resource.and_then(|r| r.attributes), &mut resource);
            for ss in rs.scope_spans.unwrap_or_default() {
                let mut scope = Attrs::default();
                attrs(ss.scope.and_then(|s| s.attributes), &mut scope);
                for raw in ss.spans.unwrap_or_default() {
                    let span: Span<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                        if e.is_data() {
                            Reason::NotAnObject
                        } else {
                            Reason::InvalidJson
                        }
                    })?;
                    let mut head = SpanHead {
                        start_ns: nanos(span.start)?,
                        end_ns: nanos(span.end)?,
                        error: span.status.and_then(|s| s.code).is_some_and(|c| c.0),
                        ..SpanHead::default()
                    };
                    for (src, dst, n) in [
                        (&span.trace_id, &mut head.trace_id, 16),
                        (&span.span_id, &mut head.span_id, 8),
                    ] {
                        match src.as_ref().map(|s| id(&s.0, n)) {
                            None => {}
                            Some(Ok(b)) => *dst = Some(b),
                            Some(Err(())) => head.bad_id = true,
                        }
                    }
                    let mut span_attrs = Attrs::default();
                    attrs(span.attributes, &mut span_attrs);
                    let raw = raw.get().as_bytes();
                    out.push(span_item(&head, &span_attrs, &scope, &resource, raw));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
