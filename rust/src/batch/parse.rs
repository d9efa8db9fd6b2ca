//! The pure, parallel stage of a batch: each message split into elements, each
//! element parsed, validated, tokenized where counts are missing and
//! fingerprinted (events and OTLP spans alike).

use std::borrow::Cow;

use crate::error::Reason;
use crate::event::{check_bounds, parse_event, single_object, split_message, Element, Event};
use crate::fingerprint::Fingerprint;
use crate::guard::{cap_elements, inject_poison, isolate};
use crate::otlp;

use super::{Config, Message};

/// An element after the pure stage: an event with resolved counts, or a rejection.
pub(super) enum Parsed<'a> {
    Ok(Box<Resolved<'a>>),
    Rejected(Reason, &'a [u8]),
    /// A span of an OTLP record that is not a GenAI span (keeps its index).
    Skipped,
}

/// What a batch's messages hold: usage events (docs/semantics.md) or OTLP trace
/// records (§1b); both go through the same checks and windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Events,
    Otlp,
}

pub(super) struct Resolved<'a> {
    pub(super) event: Event<'a>,
    pub(super) raw: &'a [u8],
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) estimated: bool,
    pub(super) fingerprint: Fingerprint,
}

pub(super) fn resolve<'a>(json: &'a [u8], raw: &'a [u8], cfg: &Config) -> Parsed<'a> {
    match parse_event(json) {
        Ok(event) => resolve_event(event, raw, cfg),
        Err(r) => Parsed::Rejected(r, raw),
    }
}

pub(super) fn resolve_event<'a>(mut event: Event<'a>, raw: &'a [u8], cfg: &Config) -> Parsed<'a> {
    let encodings = &cfg.encodings;
    let mut estimated = false;
    let mut count = |text: &Option<Cow<'_, str>>| {
        let (enc, fallback) = encodings.lookup(&event.model);
        estimated |= fallback;
        text.as_deref().map_or(0, |t| enc.count(t))
    };
    let input = match event.input_tokens {
        Some(n) => n,
        None if event.prompt.is_some() => count(&event.prompt),
        None => 0,
    };
    let output = match event.output_tokens {
        Some(n) => n,
        None if event.output.is_some() => count(&event.output),
        None => 0,
    };
    if let Err(r) = check_bounds(&event, input, output) {
        return Parsed::Rejected(r, raw);
    }
    // Text is used for counting and fingerprints only, never kept; where the
    // gateway sent a fingerprint instead, it stands in for the text.
    let key = &cfg.fingerprint_key;
    let from_text = Fingerprint::of(key, event.prompt.as_deref(), event.output.as_deref());
    let fp = match event.fingerprint.take() {
        None => from_text,
        Some(wire) => match wire.under(key) {
            Ok(sent) => from_text.or(&sent, event.prompt.is_some(), event.output.is_some()),
            Err(r) => return Parsed::Rejected(r, raw),
        },
    };
    event.prompt = None;
    event.output = None;
    Parsed::Ok(Box::new(Resolved {
        event,
        raw,
        input,
        output,
        estimated,
        fingerprint: fp,
    }))
}

/// The pure stage of one message; a panic on it (a core bug this input hits)
/// makes the whole message one `poison` rejection, the batch goes on.
pub(super) fn parse_message<'a>(format: Format, m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    isolate(|| {
        inject_poison(&cfg.fault_poison, m.value);
        match format {
            Format::Events => parse_elements(m, cfg),
            Format::Otlp => parse_otlp(m, cfg),
        }
    })
    .unwrap_or_else(|| vec![Parsed::Rejected(Reason::Poison, m.value)])
}

pub(super) fn parse_elements<'a>(m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    // The common case, one event per message: one pass over its bytes.
    if let Some(body) = single_object(m.value, cfg.max_message_bytes) {
        if let Ok(event) = parse_event(body) {
            return vec![resolve_event(event, m.value, cfg)];
        }
    }
    let mut elements = split_message(m.value, cfg.max_message_bytes);
    cap_elements(m.value, &mut elements, cfg.limits.max_elements);
    elements
        .into_iter()
        .map(|el| match el {
            Element::Event { json, raw } => resolve(json, raw, cfg),
            Element::Rejected(r, raw) => Parsed::Rejected(r, raw),
        })
        .collect()
}

/// An OTLP record's spans: each GenAI span an event (then resolved as any
/// event: counts, bounds), each other span `Skipped`; `idx` = the span's
/// position in the record.
pub(super) fn parse_otlp<'a>(m: &Message<'a>, cfg: &Config) -> Vec<Parsed<'a>> {
    otlp::decode(m.value, cfg.max_message_bytes)
        .into_iter()
        .map(|item| match item {
            otlp::Item::Event(event, raw) => resolve_event(*event, raw, cfg),
            otlp::Item::Rejected(r, raw) => Parsed::Rejected(r, raw),
            otlp::Item::Skipped => Parsed::Skipped,
        })
        .collect()
}
