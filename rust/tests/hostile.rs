//! Hostile input never crashes the core nor loses an element: every byte
//! string gives accepted events or a reason code, and text is stored verbatim
//! or rejected, never mangled. Property tests (proptest) over arbitrary bytes
//! and over mutations of valid events (deleted fields, swapped types, huge and
//! non-finite numbers, deep nesting, BOMs, invalid UTF-8, duplicate keys,
//! special-token text, SQL-looking strings).

use proptest::prelude::*;
use tokenlord_core::batch::{BatchOut, Config, Core, Format, Message};
use tokenlord_core::guard::Limits;
use tokenlord_core::outcome::parse_outcomes;

const NOW: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z

fn run<'a>(core: &mut Core, values: &'a [Vec<u8>]) -> BatchOut<'a> {
    let msgs: Vec<Message<'a>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Message {
            partition: (i % 3) as i32,
            offset: i as i64,
            value: v,
        })
        .collect();
    core.process(&msgs, NOW)
}

/// Elements a message splits into, as the contract counts them: accepted,
/// rejected, or dropped as a duplicate.
fn accounted(out: &BatchOut<'_>) -> u64 {
    out.events.len() as u64 + out.rejected.len() as u64 + out.duplicates
}

const REASONS: &[&str] = &[
    "invalid_json",
    "not_an_object",
    "too_large",
    "missing_usage",
    "future_timestamp",
    "late",
    "too_many_elements",
    "too_many_rejections",
];

fn known_reason(r: &str) -> bool {
    REASONS.contains(&r)
        || ["missing_field:", "invalid_field:", "out_of_range:"]
            .iter()
            .any(|p| r.strip_prefix(p).is_some_and(|f| !f.is_empty()))
}

fn valid_event(id: &str, user: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "ts": NOW - 60_000, "user": user, "model": "gpt-4o",
        "input_tokens": 12, "output_tokens": 3, "team": "t", "session_id": "s"
    })
}

/// A hostile value for a field.
fn hostile_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(-0.0)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e300)),
        Just(json!([])),
        Just(json!({})),
        Just(json!("")),
        Just(json!("x'); DROP TABLE events; --")),
        Just(json!("<|endoftext|>")),
        Just(json!("\u{feff}bom")),
        Just(json!("2026-13-45T99:99:99Z")),
        Just(json!("9".repeat(400))),
        ".{0,40}".prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
    ]
}

const FIELDS: &[&str] = &[
    "event_id",
    "ts",
    "user",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "status",
    "prompt",
    "output",
    "team",
    "latency_ms",
    "session_id",
    "gen_ai.usage.input_tokens",
    "enduser.id",
];

/// A valid event with some fields deleted or replaced by hostile values.
fn mutated_event() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-z0-9-]{1,12}",
        prop::collection::vec((0..FIELDS.len(), prop::option::of(hostile_value())), 0..5),
    )
        .prop_map(|(id, muts)| {
            let mut ev = valid_event(&id, "user-1");
            let obj = ev.as_object_mut().unwrap();
            for (f, v) in muts {
                match v {
                    Some(v) => obj.insert(FIELDS[f].to_owned(), v),
                    None => obj.remove(FIELDS[f]),
                };
            }
            serde_json::to_vec(&ev).unwrap()
        })
}

/// Raw bytes shaped to hit the splitter and the JSON parser's edges.
fn raw_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        mutated_event(),
        // Arrays and NDJSON of mutated events, with junk between.
        prop::collection::vec(mutated_event(), 1..5).prop_map(|evs| {
            let mut out = b"[".to_vec();
            out.extend(evs.join(&b","[..]));
            out.push(b']');
            out
        }),
        prop::collection::vec(mutated_event(), 1..5).prop_map(|evs| {
            let mut out = evs.join(&b"\n"[..]);
            out.extend_from_slice(b"\n{oops\n\xff\xfe\n");
            out
        }),
        // Deep nesting around the parser's depth limit.
        (120usize..140).prop_map(|d| {
            let mut v = b"{\"event_id\":\"d\",\"x\":".to_vec();
            v.extend(std::iter::repeat(b'[').take(d));
            v.extend(std::iter::repeat(b']').take(d));
            v.push(b'}');
            v
        }),
        // A BOM, duplicate keys, non-finite literals, invalid UTF-8 in a string.
        Just(b"\xef\xbb\xbf{\"event_id\":\"b\",\"ts\":1,\"user\":\"u\",\"model\":\"m\",\"input_tokens\":1}".to_vec()),
        Just(br#"{"event_id":"a","event_id":"b","ts":1,"user":"u","model":"m","input_tokens":1,"input_tokens":-1}"#.to_vec()),
        Just(br#"{"event_id":"n","ts":1,"user":"u","model":"m","input_tokens":NaN}"#.to_vec()),
        Just(br#"{"event_id":"i","ts":1,"user":"u","model":"m","input_tokens":1e309}"#.to_vec()),
        Just(b"{\"event_id\":\"u\",\"ts\":1,\"user\":\"\xff\xfe\",\"model\":\"m\",\"input_tokens\":1}".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_element_is_accepted_or_rejected_with_a_known_reason(
        values in prop::collection::vec(raw_message(), 1..12)
    ) {
        let mut core = Core::new(Config::default()).unwrap();
        let out = run(&mut core, &values);
        for r in &out.rejected {
            prop_assert!(known_reason(&r.reason.to_string()), "unknown reason {}", r.reason);
            // The raw bytes of a rejection are a slice of its message, verbatim.
            let msg = &values[r.offset as usize];
            prop_assert!(r.raw.is_empty() || msg.windows(r.raw.len()).any(|w| w == r.raw));
        }
        for e in &out.events {
            // Stored strings are exactly what was sent (valid UTF-8, unchanged).
            let msg = String::from_utf8_lossy(&values[e.offset as usize]).into_owned();
            prop_assert!(msg.contains(&*serde_json::to_string(&*e.event.user).unwrap()));
            prop_assert!(e.total_tokens() >= e.wasted_tokens);
        }
        // A message is never silently lost: it yields at least one outcome.
        for (i, _) in values.iter().enumerate() {
            let offset = i as i64;
            let seen = out.events.iter().any(|e| e.offset == offset)
                || out.rejected.iter().any(|r| r.offset == offset);
            prop_assert!(seen || out.duplicates > 0, "message {i} produced nothing");
        }
        prop_assert!(accounted(&out) >= values.len() as u64);
        // Replaying the same messages (a redelivery) applies nothing twice.
        let again = run(&mut core, &values);
        prop_assert_eq!(again.replayed, values.len() as u64);
        prop_assert!(again.events.is_empty() && again.rejected.is_empty());
    }

    #[test]
    fn otlp_records_never_crash_and_rejections_are_slices_of_their_record(
        values in prop::collection::vec(prop_oneof![
            raw_message(),
            prop::collection::vec(any::<u8>(), 0..300),
            // Protobuf-looking: field 1, a length, then arbitrary bytes.
            prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| [vec![0x0a, b.len() as u8 & 0x7f], b].concat()),
        ], 1..12)
    ) {
        let msgs: Vec<Message<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Message { partition: 0, offset: i as i64, value: v })
            .collect();
        let mut core = Core::new(Config::default()).unwrap();
        let out = core.process_as(Format::Otlp, &msgs, NOW);
        for r in &out.rejected {
            prop_assert!(known_reason(&r.reason.to_string()), "unknown reason {}", r.reason);
            let msg = &values[r.offset as usize];
            prop_assert!(r.raw.is_empty() || msg.windows(r.raw.len()).any(|w| w == r.raw));
        }
        prop_assert_eq!(out.progress, vec![(0, values.len() as i64)]);
    }

    #[test]
    fn outcomes_never_crash_and_always_give_a_reason(
        values in prop::collection::vec(raw_message(), 1..12)
    ) {
        let msgs: Vec<Message<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Message { partition: 0, offset: i as i64, value: v })
            .collect();
        let out = parse_outcomes(&msgs, 1 << 20, &Limits::default(), NOW, 600_000);
        for r in &out.rejected {
            prop_assert!(known_reason(&r.reason.to_string()), "unknown reason {}", r.reason);
        }
    }
}

#[test]
fn ten_megabyte_values_are_rejected_or_counted_without_crashing() {
    let mut core = Core::new(Config {
        max_message_bytes: 16 << 20,
        ..Config::default()
    })
    .unwrap();
    let big = "word ".repeat(2 << 20); // 10 MB of text
    let text_event = serde_json::to_vec(&serde_json::json!({
        "event_id": "big", "ts": NOW - 1000, "user": "u", "model": "gpt-4o", "prompt": big
    }))
    .unwrap();
    let huge_id = serde_json::to_vec(&serde_json::json!({
        "event_id": "x".repeat(10 << 20), "ts": NOW - 1000, "user": "u", "model": "gpt-4o",
        "input_tokens": 1
    }))
    .unwrap();
    let values = vec![text_event, huge_id];
    let out = run(&mut core, &values);
    assert_eq!(out.events.len(), 1);
    let n = out.events[0].input_tokens;
    assert!(
        (2 << 20..=(2 << 20) + 1).contains(&n),
        "about a token per word: {n}"
    );
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].reason.to_string(), "invalid_field:event_id");
    // With the default 1 MiB limit both are rejected whole.
    let mut core = Core::new(Config::default()).unwrap();
    let out = run(&mut core, &values);
    let reasons: Vec<String> = out.rejected.iter().map(|r| r.reason.to_string()).collect();
    assert_eq!(reasons, ["too_large", "too_large"]);
}
