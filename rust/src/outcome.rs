//! Outcome events (docs/semantics.md, "Outcomes"): what the tokens achieved.
//!
//! `{"event_id"|"session_id": ..., "ts": ..., "user": ..., "outcome": ...,
//! "value": <number, optional>}`, one object, an array or NDJSON per message,
//! like usage events. They carry no window state: ClickHouse joins them to
//! usage by `event_id` or `session_id` (the `value_weekly` view).

use serde_json::{Map, Value};

use crate::batch::{Message, Rejection};
use crate::error::{Field, Reason};
use crate::event::{
    split_message, Element, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_USER_CHARS, SESSION_KEYS, USER_KEYS,
};
use crate::guard::{cap_elements, push_rejection, Limits};
use crate::time::{parse_rfc3339, MAX_TS_MS};

/// Longest outcome name (`"merged"`, `"resolved"`, or a gateway's own word).
const MAX_OUTCOME_CHARS: usize = 64;

/// One valid outcome event.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    pub event_id: String,
    pub session_id: String,
    pub ts: i64,
    pub user: String,
    pub outcome: String,
    pub value: Option<f64>,
    pub partition: i32,
    pub offset: i64,
    pub idx: u32,
}

#[derive(Debug, Default)]
pub struct OutcomesOut<'a> {
    pub outcomes: Vec<OutcomeRow>,
    pub rejected: Vec<Rejection<'a>>,
}

/// The first of `keys` present (and not null) in `obj`.
fn lookup<'v>(obj: &'v Map<String, Value>, keys: &[&str]) -> Option<&'v Value> {
    keys.iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()))
}

fn string(
    obj: &Map<String, Value>,
    keys: &[&str],
    field: Field,
    max_chars: usize,
) -> Result<Option<String>, Reason> {
    match lookup(obj, keys) {
        None => Ok(None),
        Some(Value::String(s)) if (1..=max_chars).contains(&s.chars().count()) => {
            Ok(Some(s.clone()))
        }
        // Like usage events: a string of the wrong length is an invalid field.
        Some(Value::String(_)) => Err(Reason::InvalidField(field)),
        Some(_) => Err(Reason::InvalidField(field)),
    }
}

fn timestamp(obj: &Map<String, Value>) -> Result<i64, Reason> {
    let ts = match lookup(obj, &["ts"]) {
        None => return Err(Reason::MissingField(Field::Ts)),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if n.is_i64() || n.is_u64() => v,
            _ if n.is_u64() => return Err(Reason::OutOfRange(Field::Ts)),
            _ => return Err(Reason::InvalidField(Field::Ts)),
        },
        Some(Value::String(s)) => parse_rfc3339(s).ok_or(Reason::InvalidField(Field::Ts))?,
        Some(_) => return Err(Reason::InvalidField(Field::Ts)),
    };
    if (0..=MAX_TS_MS).contains(&ts) {
        Ok(ts)
    } else {
        Err(Reason::OutOfRange(Field::Ts))
    }
}

fn parse(json: &[u8], now_ms: i64, future_ms: i64) -> Result<OutcomeRow, Reason> {
    let obj: Map<String, Value> = match serde_json::from_slice(json) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(Reason::NotAnObject),
        Err(_) => return Err(Reason::InvalidJson),
    };
    let event_id = string(&obj, &["event_id"], Field::EventId, MAX_ID_CHARS)?;
    let session_id = string(&obj, &SESSION_KEYS, Field::SessionId, MAX_NAME_CHARS)?;
    if event_id.is_none() && session_id.is_none() {
        return Err(Reason::MissingField(Field::EventId));
    }
    let ts = timestamp(&obj)?;
    let user = string(&obj, &USER_KEYS, Field::User, MAX_USER_CHARS)?
        .ok_or(Reason::MissingField(Field::User))?;
    let outcome = string(&obj, &["outcome"], Field::Outcome, MAX_OUTCOME_CHARS)?
        .ok_or(Reason::MissingField(Field::Outcome))?;
    let value = match lookup(&obj, &["value"]) {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Some(v),
            _ => return Err(Reason::OutOfRange(Field::Value)),
        },
        Some(_) => return Err(Reason::InvalidField(Field::Value)),
    };
    if ts > now_ms.saturating_add(future_ms) {
        return Err(Reason::FutureTimestamp);
    }
    Ok(OutcomeRow {
        event_id: event_id.unwrap_or_default(),
        session_id: session_id.unwrap_or_default(),
        ts,
        user,
        outcome,
        value,
        partition: 0,
        offset: 0,
        idx: 0,
    })
}

/// Validates a batch of outcome messages (the fan-out caps of usage events apply).
pub fn parse_outcomes<'a>(
    msgs: &[Message<'a>],
    max_message_bytes: usize,
    limits: &Limits,
    now_ms: i64,
    future_ms: i64,
) -> OutcomesOut<'a> {
    let mut out = OutcomesOut::default();
    for m in msgs {
        let mut elements = split_message(m.value, max_message_bytes);
        cap_elements(m.value, &mut elements, limits.max_elements);
        let last = elements.len().saturating_sub(1);
        let mut rejections = 0;
        for (i, el) in elements.into_iter().enumerate() {
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            let (reason, raw) = match el {
                Element::Rejected(r, raw) => (r, raw),
                Element::Event { json, raw } => match parse(json, now_ms, future_ms) {
                    Ok(row) => {
                        out.outcomes.push(OutcomeRow {
                            partition: m.partition,
                            offset: m.offset,
                            idx,
                            ..row
                        });
                        continue;
                    }
                    Err(r) => (r, raw),
                },
            };
            let r = Rejection {
                partition: m.partition,
                offset: m.offset,
                idx,
                reason,
                raw,
            };
            if push_rejection(
                limits,
                m.value,
                &mut rejections,
                i == last,
                &mut out.rejected,
                r,
            ) {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_704_067_200_000;

    fn run(values: &[&str]) -> OutcomesOut<'static> {
        let owned: Vec<&'static [u8]> = values
            .iter()
            .map(|v| &*Box::leak(v.as_bytes().to_vec().into_boxed_slice()))
            .collect();
        let msgs: Vec<Message<'static>> = owned
            .iter()
            .enumerate()
            .map(|(i, v)| Message {
                partition: 0,
                offset: i as i64,
                value: v,
            })
            .collect();
        parse_outcomes(&msgs, 1 << 20, &Limits::default(), NOW, 600_000)
    }

    #[test]
    fn valid_outcomes_by_event_or_session() {
        let out = run(&[
            r#"{"event_id":"e1","ts":1704067100000,"user":"ann","outcome":"merged","value":2.5}"#,
            r#"[{"session_id":"s1","ts":"2024-01-01T00:00:00Z","user_id":"bob","outcome":"resolved"}]"#,
        ]);
        assert!(out.rejected.is_empty());
        assert_eq!(out.outcomes.len(), 2);
        assert_eq!(out.outcomes[0].value, Some(2.5));
        assert_eq!(out.outcomes[1].session_id, "s1");
        assert_eq!((out.outcomes[1].offset, out.outcomes[1].idx), (1, 0));
    }

    #[test]
    fn bad_outcomes_get_a_reason() {
        let reasons: Vec<String> = run(&[
            r#"{"ts":1,"user":"a","outcome":"x"}"#,
            r#"{"event_id":"e","user":"a","outcome":"x"}"#,
            r#"{"event_id":"e","ts":1,"outcome":"x"}"#,
            r#"{"event_id":"e","ts":1,"user":"a"}"#,
            r#"{"event_id":"e","ts":1,"user":"a","outcome":"x","value":"3"}"#,
            r#"{"event_id":"e","ts":99999999999999,"user":"a","outcome":"x"}"#,
            r#"{"event_id":"e","ts":1,"user":"a","outcome":""}"#,
            "nope",
            "7",
        ])
        .rejected
        .iter()
        .map(|r| r.reason.to_string())
        .collect();
        assert_eq!(
            reasons,
            [
                "missing_field:event_id",
                "missing_field:ts",
                "missing_field:user",
                "missing_field:outcome",
                "invalid_field:value",
                "future_timestamp",
                "invalid_field:outcome",
                "invalid_json",
                "not_an_object",
            ]
        );
    }
}
