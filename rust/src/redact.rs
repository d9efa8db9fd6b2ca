//! What `rejected.raw` keeps of a rejected input: its structure, never its
//! text (docs/semantics.md: prompt and output text is never stored).
//!
//! A lexical pass that needs no valid JSON (most rejected input is not):
//! keys, numbers, literals and punctuation are kept; a string value is kept
//! only under a key whose values are names or ids (`user`, `model`, ...) and
//! when short; every other string, every key that is not a short identifier
//! and every run of bytes that is no JSON token becomes `"<redacted: N bytes>"`. So an operator still sees
//! which field was wrong, and nobody can read a prompt back from the table.

/// Members whose (short) string values are kept: the event's and outcome's
/// names and ids, which the `events` table stores anyway, and the members
/// of a fingerprint (keyed hashes, sizes).
const KEEP: &[&str] = &[
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
    "gen_ai.system",
    "session_id",
    "gen_ai.conversation.id",
    "status",
    "finish_reason",
    "gen_ai.response.finish_reasons",
    "outcome",
    "key",
    "hash",
    "sim",
    "bag",
];

/// Keys whose values are arrays of names: their array's strings take the key.
const ARRAY_OF_NAMES: &[&str] = &["gen_ai.response.finish_reasons"];

/// Longest kept string value and key, in bytes.
const MAX_KEPT_VALUE: usize = 256;
const MAX_KEPT_KEY: usize = 40;

/// Where in a container the pass is: what may come next.
#[derive(Clone, Copy, PartialEq)]
enum At {
    /// An object's member name (after `{` or `,`).
    Key,
    /// After a member name, before its `:`.
    Colon,
    /// A value: after an object's `:`, an array's `[` or `,`, or a new line
    /// at the top.
    Value,
    /// After a value: only `,` or the container's end belong here.
    Done,
}

#[derive(Clone, Copy)]
struct Frame<'a> {
    object: bool,
    at: At,
    /// The member's (kept) name; in an array, the name it takes from its
    /// member when that holds names (`ARRAY_OF_NAMES`).
    key: Option<&'a [u8]>,
}

fn placeholder(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("\"<redacted: {n} bytes>\"").as_bytes());
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// A JSON number exactly (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`)
/// or literal: `12-27`, `+1-555` or `4.` are not.
fn is_json_token(t: &[u8]) -> bool {
    if matches!(t, b"true" | b"false" | b"null") {
        return true;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > from
    };
    let mut i = usize::from(t.first() == Some(&b'-'));
    if t.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == t.len()
}

/// End of the string starting at `start` (the index after its closing
/// quote), or `None` when it is not closed.
fn string_end(raw: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < raw.len() {
        match raw[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn is_kept_key(name: &[u8]) -> bool {
    name.len() <= MAX_KEPT_KEY
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

/// `raw` with its text redacted, cut to at most `limit` bytes.
///
/// Only what stands where JSON puts it is kept: a member name that is a
/// short identifier, a value that is a JSON number or literal, and a short
/// string value of a `KEEP` member. Anything out of place (a second value,
/// a name without its `:`, text outside quotes) is redacted.
pub fn redact(raw: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len().min(limit) + 32);
    // The bottom frame is the top level: one value per line.
    let top = Frame {
        object: false,
        at: At::Value,
        key: None,
    };
    let mut stack: Vec<Frame<'_>> = vec![top];
    let mut i = 0;
    while i < raw.len() && out.len() < limit {
        let b = raw[i];
        let depth = stack.len();
        let frame = stack.last_mut().expect("the top frame is never popped");
        match b {
            b'"' => {
                let end = string_end(raw, i);
                let s = &raw[i..end.unwrap_or(raw.len())];
                let inner = &s[1..s.len().saturating_sub(usize::from(end.is_some())).max(1)];
                let closed = end.is_some();
                let keep = match frame.at {
                    At::Key if frame.object => {
                        let kept = closed && is_kept_key(inner);
                        frame.key = kept.then_some(inner);
                        frame.at = At::Colon;
                        kept
                    }
                    At::Value => {
                        frame.at = At::Done;
                        closed
                            && inner.len() <= MAX_KEPT_VALUE
                            && frame
                                .key
                                .is_some_and(|k| KEEP.iter().any(|w| w.as_bytes() == k))
                    }
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(s);
                } else {
                    placeholder(&mut out, inner.len());
                }
                i = end.unwrap_or(raw.len());
            }
            b'{' | b'[' => {
                // A nested container is its member's (or item's) value.
                let key = if b == b'[' {
                    frame.key.filter(|k| {
                        frame.at == At::Value && ARRAY_OF_NAMES.iter().any(|w| w.as_bytes() == *k)
                    })
                } else {
                    None
                };
                frame.at = At::Done;
                stack.push(Frame {
                    object: b == b'{',
                    at: if b == b'{' { At::Key } else { At::Value },
                    key,
                });
                out.push(b);
                i += 1;
            }
            b'}' | b']' => {
                if depth > 1 {
                    stack.pop();
                }
                out.push(b);
                i += 1;
            }
            b',' => {
                frame.at = if frame.object { At::Key } else { At::Value };
                if frame.object {
                    frame.key = None;
                }
                out.push(b);
                i += 1;
            }
            b':' => {
                if frame.object && frame.at == At::Colon {
                    frame.at = At::Value;
                }
                out.push(b);
                i += 1;
            }
            b'\n' if depth == 1 => {
                frame.at = At::Value;
                out.push(b);
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push(b);
                i += 1;
            }
            _ => {
                // A bare token: a number or literal in a value's place is
                // kept, anything else (text outside quotes, binary) is redacted.
                let start = i;
                if is_token_byte(b) {
                    while i < raw.len() && is_token_byte(raw[i]) {
                        i += 1;
                    }
                } else {
                    while i < raw.len()
                        && !is_token_byte(raw[i])
                        && !b"\"{}[],: \t\r\n".contains(&raw[i])
                    {
                        i += 1;
                    }
                }
                let t = &raw[start..i];
                let keep = frame.at == At::Value && is_json_token(t);
                if frame.at == At::Value {
                    frame.at = At::Done;
                }
                if keep {
                    out.extend_from_slice(t);
                } else {
                    placeholder(&mut out, t.len());
                }
            }
        }
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        String::from_utf8(redact(s.as_bytes(), 4096)).unwrap()
    }

    #[test]
    fn text_goes_names_and_structure_stay() {
        let got = r(
            r#"{"event_id":"e1","ts":"2026-01-01T00:00:00Z","user":"ada","model":"gpt-4o",
            "input_tokens":-5,"prompt":"my salary is 100k","output":"ok","extra":{"note":"secret"},
            "gen_ai.response.finish_reasons":["stop"],"status":"ok","x":[true,null,1.5e3]}"#,
        );
        assert!(got.contains(r#""user":"ada""#), "{got}");
        assert!(got.contains(r#""input_tokens":-5"#), "{got}");
        assert!(got.contains(r#""prompt":"<redacted: 17 bytes>""#), "{got}");
        assert!(got.contains(r#""note":"<redacted: 6 bytes>""#), "{got}");
        assert!(got.contains(r#"["stop"]"#), "{got}");
        assert!(got.contains("[true,null,1.5e3]"), "{got}");
        assert!(!got.contains("salary") && !got.contains("secret"), "{got}");
        // Still JSON when it was JSON.
        assert!(
            serde_json::from_str::<serde_json::Value>(&got).is_ok(),
            "{got}"
        );
    }

    #[test]
    fn broken_input_loses_its_text_too() {
        for (raw, secret) in [
            (r#"{"prompt":"unterminated secret"#, "secret"),
            ("plain text secret, not JSON", "secret"),
            (r#"{"user":"u","prompt": secret words}"#, "secret"),
            (
                r#"{"a very long key that is really a prompt in disguise, secret...":1}"#,
                "secret",
            ),
            (r#"{"user":"u","prompt":"esc \" secret \\"}"#, "secret"),
            (r#"["secret", {"user":"secret2"}]"#, "secret\""),
        ] {
            let got = r(raw);
            assert!(!got.contains(secret), "{raw} -> {got}");
        }
        let bin: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
        let got = redact(&bin, 4096);
        assert!(got.len() <= 4096);
    }

    #[test]
    fn only_what_stands_where_json_puts_it_is_kept() {
        for (raw, secret) in [
            // strings in an array under a kept name
            (r#"{"user":["ada","my salary is 100k"]}"#, "salary"),
            (r#"{"bag":["secret words one","two"]}"#, "secret"),
            // a second value, a name without its colon, a value after a container
            (r#"{"user":"ada" "my salary is 100k"}"#, "salary"),
            (r#"{"model" "my salary is 100k"}"#, "salary"),
            (r#"{"user":{"a":1}"leaked secret text"}"#, "secret"),
            // numbers in text: not JSON numbers, or out of a value's place
            (
                "call me at +1-555-0100, card 4111111111111111, pin 1234",
                "4111111111111111",
            ),
            (
                "call me at +1-555-0100, card 4111111111111111, pin 1234",
                "1234",
            ),
            (r#"{"prompt": my card 4111111111111111 exp 12-27}"#, "4111"),
            (r#"{"prompt": my card 4111111111111111 exp 12-27}"#, "12-27"),
        ] {
            let got = r(raw);
            assert!(!got.contains(secret), "{raw} -> {got}");
        }
        assert_eq!(
            r(r#"{"gen_ai.response.finish_reasons":["stop","length"],"n":[1,-2.5e3,0]}"#),
            r#"{"gen_ai.response.finish_reasons":["stop","length"],"n":[1,-2.5e3,0]}"#
        );
        assert_eq!(r("7"), "7");
        assert_eq!(
            r("{\"user\":\"a\"}\n{\"user\":\"b\"}"),
            "{\"user\":\"a\"}\n{\"user\":\"b\"}"
        );
        for t in ["0", "-1", "1.5", "2e10", "-0.5E-3", "true", "null"] {
            assert!(is_json_token(t.as_bytes()), "{t}");
        }
        for t in [
            "",
            "-",
            "01",
            "1.",
            ".5",
            "1e",
            "12-27",
            "+1",
            "4111-1111",
            "1.2.3",
        ] {
            assert!(!is_json_token(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn kept_values_are_short_and_output_is_cut() {
        let long_user = "u".repeat(300);
        let got = r(&format!(r#"{{"user":"{long_user}"}}"#));
        assert_eq!(got, r#"{"user":"<redacted: 300 bytes>"}"#);
        let many = format!("[{}]", vec!["1"; 5000].join(","));
        assert_eq!(redact(many.as_bytes(), 4096).len(), 4096);
    }
}
