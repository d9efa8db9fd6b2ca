//! Unit tests of the OTLP decoder; records are built with a tiny protobuf
//! writer here (the Python suite builds them with the OpenTelemetry SDK's own
//! encoder and checks the whole path through Kafka).

use super::*;
use crate::batch::{Config, Core, Format, Message};

// -- a protobuf writer for the test records -------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len(field: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn fixed64(field: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | 1, &mut out);
    out.extend_from_slice(&v.to_le_bytes());
    out
}

fn int_field(field: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3, &mut out);
    varint(v, &mut out);
    out
}

enum V<'a> {
    S(&'a str),
    I(i64),
    D(f64),
    B(bool),
    A(Vec<V<'a>>),
}

fn any(v: &V<'_>) -> Vec<u8> {
    match v {
        V::S(s) => len(1, s.as_bytes()),
        V::B(b) => int_field(2, u64::from(*b)),
        V::I(n) => int_field(3, *n as u64),
        V::D(x) => fixed64(4, x.to_bits()),
        V::A(items) => len(
            5,
            &items
                .iter()
                .flat_map(|i| len(1, &any(i)))
                .collect::<Vec<u8>>(),
        ),
    }
}

fn kv(key: &str, v: V<'_>) -> Vec<u8> {
    [len(1, key.as_bytes()), len(2, &any(&v))].concat()
}

const TRACE: [u8; 16] = [0xab; 16];
const START: u64 = 1_767_571_200_000_000_000; // 2026-01-05T00:00:00Z
const END: u64 = START + 1_500_000_000; // 1.5 s later

fn span_bytes(span_id: u8, attrs: &[Vec<u8>], status: Option<u64>) -> Vec<u8> {
    let mut s = [
        len(1, &TRACE),
        len(2, &[0, 0, 0, 0, 0, 0, 0, span_id]),
        len(5, b"chat gpt-4o"),
        fixed64(7, START),
        fixed64(8, END),
    ]
    .concat();
    for a in attrs {
        s.extend(len(9, a));
    }
    if let Some(code) = status {
        s.extend(len(15, &[len(2, b"boom"), int_field(3, code)].concat()));
    }
    s
}

fn request(resource: &[Vec<u8>], spans: &[Vec<u8>]) -> Vec<u8> {
    let res: Vec<u8> = resource.iter().flat_map(|a| len(1, a)).collect();
    let scope = [
        len(1, &len(1, b"opentelemetry.instrumentation.openai")),
        spans.iter().flat_map(|s| len(2, s)).collect(),
    ]
    .concat();
    len(1, &[len(1, &res), len(2, &scope)].concat())
}

fn chat_attrs() -> Vec<Vec<u8>> {
    vec![
        kv("gen_ai.operation.name", V::S("chat")),
        kv("gen_ai.request.model", V::S("gpt-4o")),
        kv("gen_ai.response.model", V::S("gpt-4o-2024-08-06")),
        kv("gen_ai.provider.name", V::S("openai")),
        kv("gen_ai.usage.input_tokens", V::I(1200)),
        kv("gen_ai.usage.output_tokens", V::I(300)),
        kv("gen_ai.usage.cache_read.input_tokens", V::I(200)),
        kv("gen_ai.usage.reasoning.output_tokens", V::I(50)),
        kv("gen_ai.conversation.id", V::S("conv-1")),
        kv(
            "gen_ai.response.finish_reasons",
            V::A(vec![V::S("stop"), V::S("length")]),
        ),
        kv("user.id", V::S("ann")),
        kv("http.url", V::S("https://example.invalid")),
    ]
}

fn resource() -> Vec<Vec<u8>> {
    vec![
        kv("service.name", V::S("ide")),
        kv("service.namespace", V::S("platform")),
        kv("user.id", V::S("resource-user")),
    ]
}

fn events(items: &[Item<'_>]) -> Vec<Event<'static>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e, _) => Some(owned(e)),
            _ => None,
        })
        .collect()
}

fn owned(e: &Event<'_>) -> Event<'static> {
    let o = |c: &Cow<'_, str>| Cow::Owned(c.to_string());
    Event {
        event_id: o(&e.event_id),
        ts: e.ts,
        user: o(&e.user),
        model: o(&e.model),
        team: o(&e.team),
        app: o(&e.app),
        provider: o(&e.provider),
        session_id: o(&e.session_id),
        input_tokens: e.input_tokens,
        output_tokens: e.output_tokens,
        cached_input_tokens: e.cached_input_tokens,
        reasoning_tokens: e.reasoning_tokens,
        prompt: None,
        output: None,
        fingerprint: None,
        is_error: e.is_error,
        finish_reason: o(&e.finish_reason),
        latency_ms: e.latency_ms,
    }
}

fn kinds(items: &[Item<'_>]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Item::Event(e, _) => format!("event:{}", e.user),
            Item::Rejected(r, _) => r.to_string(),
            Item::Skipped => "skipped".into(),
        })
        .collect()
}

const MAX: usize = 1 << 20;

// -- mapping -----------------------------------------------------------------------------

#[test]
fn current_genai_names() {
    let rec = request(&resource(), &[span_bytes(1, &chat_attrs(), Some(1))]);
    let items = decode(&rec, MAX);
    let ev = &events(&items)[0];
    assert_eq!(
        ev.event_id,
        format!("{}{}", "ab".repeat(16), "0000000000000001")
    );
    assert_eq!(ev.ts, 1_767_571_201_500);
    assert_eq!(ev.latency_ms, Some(1500));
    assert_eq!(ev.user, "ann", "span attributes override the resource's");
    assert_eq!(ev.model, "gpt-4o", "request model first, as for events");
    assert_eq!((ev.team.as_ref(), ev.app.as_ref()), ("platform", "ide"));
    assert_eq!(
        (ev.provider.as_ref(), ev.session_id.as_ref()),
        ("openai", "conv-1")
    );
    assert_eq!((ev.input_tokens, ev.output_tokens), (Some(1200), Some(300)));
    assert_eq!(
        (ev.cached_input_tokens, ev.reasoning_tokens),
        (Some(200), Some(50))
    );
    assert_eq!(ev.finish_reason, "stop");
    assert!(!ev.is_error);
    // The raw of an event is its span's bytes.
    let Item::Event(_, raw) = &items[0] else {
        panic!()
    };
    assert_eq!(*raw, &span_bytes(1, &chat_attrs(), Some(1))[..]);
}

#[test]
fn deprecated_names_openinference_and_resource_fallbacks() {
    let old = vec![
        kv("gen_ai.system", V::S("anthropic")),
        kv("gen_ai.request.model", V::S("claude-sonnet-4")),
        kv("gen_ai.usage.prompt_tokens", V::I(10)),
        kv("gen_ai.usage.completion_tokens", V::D(7.0)),
    ];
    let oi = vec![
        kv("openinference.span.kind", V::S("LLM")),
        kv("llm.model_name", V::S("gpt-4o-mini")),
        kv("llm.provider", V::S("openai")),
        kv("llm.token_count.prompt", V::I(40)),
        kv("llm.token_count.completion", V::I(2)),
        kv("llm.token_count.total", V::I(42)),
        kv("llm.token_count.prompt_details.cache_read", V::I(8)),
        kv("session.id", V::S("s-9")),
        kv("enduser.id", V::S("bob")),
        kv("tokenlord.team", V::S("search")),
    ];
    let rec = request(
        &resource(),
        &[span_bytes(1, &old, Some(2)), span_bytes(2, &oi, None)],
    );
    let evs = events(&decode(&rec, MAX));
    assert_eq!(evs.len(), 2);
    assert_eq!(
        (
            evs[0].user.as_ref(),
            evs[0].provider.as_ref(),
            evs[0].input_tokens,
            evs[0].output_tokens
        ),
        ("resource-user", "anthropic", Some(10), Some(7))
    );
    assert!(evs[0].is_error, "status ERROR");
    assert_eq!(
        (
            evs[1].user.as_ref(),
            evs[1].model.as_ref(),
            evs[1].session_id.as_ref(),
            evs[1].team.as_ref()
        ),
        ("bob", "gpt-4o-mini", "s-9", "search")
    );
    assert_eq!(
        (evs[1].input_tokens, evs[1].cached_input_tokens),
        (Some(40), Some(8))
    );
}

#[test]
fn other_spans_are_skipped() {
    let http = vec![kv("http.method", V::S("GET")), kv("user.id", V::S("ann"))];
    let agent = vec![
        kv("gen_ai.operation.name", V::S("invoke_agent")),
        kv("gen_ai.request.model", V::S("gpt-4o")),
        kv("gen_ai.usage.input_tokens", V::I(5000)),
    ];
    let tool = vec![
        kv("gen_ai.operation.name", V::S("execute_tool")),
        kv("gen_ai.tool.name", V::S("search")),
    ];
    let chain = vec![
        kv("openinference.span.kind", V::S("CHAIN")),
        kv("llm.token_count.prompt", V::I(9)),
    ];
    // A provider alone does not make a model call.
    let provider_only = vec![kv("gen_ai.system", V::S("openai"))];
    let spans: Vec<Vec<u8>> = [http, agent, chat_attrs(), tool, chain, provider_only]
        .iter()
        .enumerate()
        .map(|(i, a)| span_bytes(i as u8 + 1, a, None))
        .collect();
    let rec = request(&[], &spans);
    let items = decode(&rec, MAX);
    assert_eq!(
        kinds(&items),
        [
            "skipped",
            "skipped",
            "event:ann",
            "skipped",
            "skipped",
            "skipped"
        ]
    );
}

#[test]
fn genai_spans_that_are_not_valid_events_are_rejected_with_their_bytes() {
    let mut no_user = chat_attrs();
    no_user.retain(|a| !a.windows(7).any(|w| w == b"user.id"));
    let no_usage = vec![
        kv("gen_ai.request.model", V::S("gpt-4o")),
        kv("user.id", V::S("ann")),
    ];
    let bad_count = vec![
        kv("gen_ai.request.model", V::S("gpt-4o")),
        kv("user.id", V::S("ann")),
        kv("gen_ai.usage.input_tokens", V::I(-3)),
    ];
    let str_count = vec![
        kv("gen_ai.request.model", V::S("gpt-4o")),
        kv("user.id", V::S("ann")),
        kv("gen_ai.usage.input_tokens", V::S("3")),
    ];
    let spans: Vec<Vec<u8>> = [no_user, no_usage, bad_count, str_count]
        .iter()
        .enumerate()
        .map(|(i, a)| span_bytes(i as u8 + 1, a, None))
        .collect();
    let rec = request(&[], &spans);
    let items = decode(&rec, MAX);
    assert_eq!(
        kinds(&items),
        [
            "missing_field:user",
            "missing_usage",
            "out_of_range:input_tokens",
            "invalid_field:input_tokens"
        ]
    );
    let Item::Rejected(_, raw) = &items[1] else {
        panic!()
    };
    assert_eq!(*raw, &spans[1][..]);
    // Bad ids.
    let mut zero = span_bytes(1, &chat_attrs(), None);
    zero.splice(2..18, [0u8; 16]);
    let short = [
        len(1, &[1; 15]),
        span_bytes(1, &chat_attrs(), None)[18..].to_vec(),
    ]
    .concat();
    let no_end: Vec<u8> = [len(1, &TRACE), len(2, &[1; 8])]
        .concat()
        .into_iter()
        .chain(chat_attrs().iter().flat_map(|a| len(9, a)))
        .collect();
    assert_eq!(
        kinds(&decode(&request(&[], &[zero, short, no_end]), MAX)),
        [
            "invalid_field:event_id",
            "invalid_field:event_id",
            "missing_field:ts"
        ]
    );
}

// -- OTLP/JSON ---------------------------------------------------------------------------

fn json_record(trace: &str, span: &str, ints_as_strings: bool) -> String {
    let n = |v: u64| {
        if ints_as_strings {
            format!("\"{v}\"")
        } else {
            v.to_string()
        }
    };
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"ide"}}}},
            {{"key":"service.namespace","value":{{"stringValue":"platform"}}}}]}},
          "scopeSpans":[{{"scope":{{"name":"x"}},"spans":[
            {{"traceId":"{trace}","spanId":"{span}","name":"chat","kind":3,
              "startTimeUnixNano":{start},"endTimeUnixNano":{end},
              "attributes":[
                {{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
                {{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},
                {{"key":"gen_ai.response.model","value":{{"stringValue":"gpt-4o-2024-08-06"}}}},
                {{"key":"gen_ai.provider.name","value":{{"stringValue":"openai"}}}},
                {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":{i}}}}},
                {{"key":"gen_ai.usage.output_tokens","value":{{"intValue":{o}}}}},
                {{"key":"gen_ai.usage.cache_read.input_tokens","value":{{"intValue":{c}}}}},
                {{"key":"gen_ai.usage.reasoning.output_tokens","value":{{"intValue":{r}}}}},
                {{"key":"gen_ai.conversation.id","value":{{"stringValue":"conv-1"}}}},
                {{"key":"gen_ai.response.finish_reasons","value":{{"arrayValue":{{"values":[{{"stringValue":"stop"}},{{"stringValue":"length"}}]}}}}}},
                {{"key":"user.id","value":{{"stringValue":"ann"}}}},
                {{"key":"http.url","value":{{"stringValue":"https://example.invalid"}}}}],
              "status":{{"code":1}}}},
            {{"traceId":"{trace}","spanId":"{span}","name":"GET","attributes":[]}}]}}]}}]}}"#,
        start = n(START),
        end = n(END),
        i = n(1200),
        o = n(300),
        c = n(200),
        r = n(50),
    )
}

#[test]
fn json_and_protobuf_give_the_same_events() {
    let proto = request(&resource(), &[span_bytes(1, &chat_attrs(), Some(1))]);
    let want = events(&decode(&proto, MAX));
    let b64_trace = BASE64_STANDARD.encode(TRACE);
    let b64_span = BASE64_STANDARD.encode([0u8, 0, 0, 0, 0, 0, 0, 1]);
    for (trace, span, strings) in [
        ("ab".repeat(16), "0000000000000001".to_owned(), true),
        ("AB".repeat(16), "0000000000000001".to_owned(), false),
        (b64_trace, b64_span, true),
    ] {
        let rec = json_record(&trace, &span, strings);
        let items = decode(rec.as_bytes(), MAX);
        assert_eq!(kinds(&items), ["event:ann", "skipped"], "{trace}");
        let mut got = events(&items);
        // The JSON record's resource has no user.id; everything else is equal.
        got[0].user = want[0].user.clone();
        assert_eq!(got, want, "{trace} {span} {strings}");
        let Item::Event(_, raw) = &items[0] else {
            panic!()
        };
        assert!(raw.starts_with(b"{\"traceId\"") && raw.ends_with(b"}"));
    }
}

#[test]
fn json_snake_case_and_enum_names() {
    let rec = r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10",
        "span_id":"0102030405060708","end_time_unix_nano":"1767571200000000000",
        "attributes":[{"key":"llm.model_name","value":{"string_value":"m"}},
                      {"key":"llm.token_count.prompt","value":{"int_value":"5"}},
                      {"key":"user.id","value":{"stringValue":"u"}}],
        "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
    let evs = events(&decode(rec.as_bytes(), MAX));
    assert_eq!(evs.len(), 1);
    assert!(evs[0].is_error);
    assert_eq!((evs[0].input_tokens, evs[0].latency_ms), (Some(5), None));
}

// -- records that do not decode ------------------------------------------------------------

#[test]
fn undecodable_records_are_one_rejection() {
    let good = request(&resource(), &[span_bytes(1, &chat_attrs(), None)]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "invalid_json"),
        (b"  \n".to_vec(), "invalid_json"),
        (b"hello world".to_vec(), "invalid_json"),
        (b"{\"resourceSpans\":[".to_vec(), "invalid_json"),
        (b"{}".to_vec(), "not_an_object"),
        (
            br#"{"event_id":"e","ts":0,"user":"u","model":"m","input_tokens":1}"#.to_vec(),
            "not_an_object",
        ),
        (br#"{"resourceSpans":7}"#.to_vec(), "not_an_object"),
        (good[..good.len() / 2].to_vec(), "invalid_json"),
        (good[..good.len() - 1].to_vec(), "invalid_json"),
        (vec![0xff; 64], "invalid_json"),
        ([&good[..], &int_field(2, 1)].concat(), "invalid_json"),
    ];
    for (rec, want) in cases {
        let items = decode(&rec, MAX);
        assert_eq!(kinds(&items), [want], "{:?}", String::from_utf8_lossy(&rec));
        let Item::Rejected(_, raw) = &items[0] else {
            panic!()
        };
        assert_eq!(*raw, &rec[..]);
    }
    assert_eq!(kinds(&decode(&good, good.len() - 1)), ["too_large"]);
}

#[test]
fn every_truncation_and_byte_flip_is_handled() {
    let good = request(
        &resource(),
        &[
            span_bytes(1, &chat_attrs(), Some(2)),
            span_bytes(2, &[], None),
        ],
    );
    assert_eq!(kinds(&decode(&good, MAX)), ["event:ann", "skipped"]);
    for n in 0..good.len() {
        // Strictly shorter than one top-level field: never decodes.
        assert_eq!(
            kinds(&decode(&good[..n], MAX)),
            ["invalid_json"],
            "cut at {n}"
        );
    }
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let _ = decode(&bad, MAX); // no panic, whatever it decodes to
        }
    }
}

#[test]
fn a_protobuf_record_that_looks_like_json_at_first() {
    // 0x0A (field 1, length-delimited) is also JSON whitespace; a length of
    // 123 makes the second byte `{`.
    let small = |pad: usize| {
        let attrs = [
            kv("llm.model_name", V::S("m")),
            kv("user.id", V::S("ann")),
            kv("llm.token_count.prompt", V::I(1)),
        ];
        let span: Vec<u8> = [len(1, &TRACE), len(2, &[1; 8]), fixed64(8, END)]
            .into_iter()
            .chain(attrs.iter().map(|a| len(9, a)))
            .chain([len(5, "x".repeat(pad).as_bytes())])
            .flatten()
            .collect();
        len(1, &len(2, &len(2, &span)))
    };
    let rec = (0..100)
        .map(small)
        .find(|r| r[1] == b'{')
        .expect("a record of 2 + 123 bytes");
    assert_eq!(kinds(&decode(&rec, MAX)), ["event:ann"]);
}

#[test]
fn hostile_json_is_bounded() {
    let deep_value = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[{{"key":"gen_ai.response.finish_reasons","value":{}{}}}]}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(5000),
        "]}}".repeat(5000)
    );
    assert_eq!(
        kinds(&decode(deep_value.as_bytes(), 1 << 24)),
        ["invalid_json"]
    );
    let deep_unknown = format!(
        r#"{{"x":{}{}, "resourceSpans":[]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let _ = decode(deep_unknown.as_bytes(), 1 << 24); // no stack overflow
                                                      // A huge array value: read in one pass, its first element kept.
    let huge = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0102030405060708","endTimeUnixNano":"1767571200000000000","attributes":[
            {{"key":"gen_ai.request.model","value":{{"stringValue":"m"}}}},
            {{"key":"user.id","value":{{"stringValue":"u"}}}},
            {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":3}}}},
            {{"key":"gen_ai.response.finish_reasons","value":{{"arrayValue":{{"values":[{}{{"intValue":1}}]}}}}}},
            {{"key":"other","value":{{"arrayValue":{{"values":[{}{{"intValue":1}}]}}}}}}]}}]}}]}}]}}"#,
        "ab".repeat(16),
        r#"{"stringValue":"stop"},"#.repeat(100_000),
        r#"{"intValue":1},"#.repeat(100_000),
    );
    let evs = events(&decode(huge.as_bytes(), 1 << 24));
    assert_eq!(evs[0].finish_reason, "stop");
}

#[test]
fn hostile_protobuf_is_bounded() {
    // Arrays nested far deeper than read: skipped by length.
    let mut v = any(&V::S("stop"));
    for _ in 0..10_000 {
        v = len(5, &len(1, &v));
    }
    let deep = [len(1, b"gen_ai.response.finish_reasons"), len(2, &v)].concat();
    let mut attrs = chat_attrs();
    attrs.retain(|a| !a.windows(13).any(|w| w == b"finish_reason"));
    attrs.push(deep);
    assert_eq!(
        kinds(&decode(
            &request(&[], &[span_bytes(1, &attrs, None)]),
            1 << 24
        )),
        ["invalid_field:finish_reason"]
    );
    // 200k attributes and a 200k-element array.
    let mut attrs = chat_attrs();
    attrs.extend((0..200_000).map(|i| kv("x", V::I(i))));
    attrs.push(kv("y", V::A((0..200_000).map(V::I).collect())));
    let rec = request(&[], &[span_bytes(1, &attrs, None)]);
    assert_eq!(kinds(&decode(&rec, 1 << 24)), ["event:ann"]);
    // A length beyond the end, and an 11-byte varint.
    assert_eq!(
        kinds(&decode(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], MAX)),
        ["invalid_json"]
    );
    let mut long = vec![0x08];
    long.extend([0xff; 10]);
    long.push(0x01);
    assert_eq!(kinds(&decode(&long, MAX)), ["invalid_json"]);
    assert!(
        matches!(decode(&[0x0a, 0x00], MAX)[..], []),
        "one empty ResourceSpans: no spans"
    );
    let _ = V::B(true);
}

// -- through the core ----------------------------------------------------------------------

#[test]
fn the_core_counts_a_resent_record_once_and_skips_other_spans() {
    let rec = request(
        &resource(),
        &[
            span_bytes(1, &[kv("http.method", V::S("GET"))], None),
            span_bytes(2, &chat_attrs(), Some(2)),
        ],
    );
    let mut core = Core::new(Config::default()).unwrap();
    let msgs = [0, 1].map(|offset| Message {
        partition: 0,
        offset,
        value: &rec,
    });
    let out = core.process_as(Format::Otlp, &msgs, 1_767_571_300_000);
    assert_eq!(
        (out.events.len(), out.duplicates, out.skipped_spans),
        (1, 1, 2)
    );
    let e = &out.events[0];
    assert_eq!(
        (e.input_tokens, e.output_tokens, e.cached_input_tokens),
        (1200, 300, 200)
    );
    assert_eq!(
        e.waste_reason,
        Some(crate::waste::WasteReason::FailedRequest),
        "an ERROR span is a failed request"
    );
    assert_eq!(out.weekly[0].cell.input_tokens, 1200);
    // The same bytes on the events path are not an event.
    let m = [Message {
        partition: 0,
        offset: 5,
        value: &rec,
    }];
    let out = core.process(&m, 1_767_571_300_000);
    assert_eq!(out.rejected[0].reason, Reason::InvalidJson);
    // A rejected span's idx is its position in the record.
    let mut no_user = chat_attrs();
    no_user.retain(|a| !a.windows(7).any(|w| w == b"user.id"));
    let rec = request(
        &[],
        &[span_bytes(1, &[], None), span_bytes(3, &no_user, None)],
    );
    let m = [Message {
        partition: 0,
        offset: 6,
        value: &rec,
    }];
    let out = core.process_as(Format::Otlp, &m, 1_767_571_300_000);
    assert_eq!((out.rejected.len(), out.rejected[0].idx), (1, 1));
    assert_eq!(out.progress, vec![(0, 7)]);
}
