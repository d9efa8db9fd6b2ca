//! What `rejected.raw` keeps of a rejected input: its structure, never its
//! text (CONTRACT §1: prompt and output text is never stored).
//!
//! A lexical pass that needs no valid JSON (most rejected input is not):
//! keys, numbers, literals and punctuation are kept; a string value is kept
//! only under a key whose values are names or ids (`user`, `model`, ...) and
//! when short; every other string, every key that is not a short identifier
//! and every run of bytes that is no JSON token becomes `"<redacted: N bytes>"`. So an operator still sees
//! which field was wrong, and nobody can read a prompt back from the table.

/// Keys whose (short) string values are kept: the event's and outcome's
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

/// Longest kept string value and key, in bytes.
const MAX_KEPT_VALUE: usize = 256;
const MAX_KEPT_KEY: usize = 40;

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// In an object: `true` while a key is expected.
    Object(bool),
    Array,
}

fn placeholder(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("\"<redacted: {n} bytes>\"").as_bytes());
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

fn is_json_token(t: &[u8]) -> bool {
    matches!(t, b"true" | b"false" | b"null")
        || (!t.is_empty()
            && t.iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E')))
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

/// `raw` with its text redacted, cut to at most `limit` bytes.
pub fn redact(raw: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len().min(limit) + 32);
    let mut stack: Vec<Ctx> = Vec::new();
    // The key of the innermost object member (an array inherits it).
    let mut keys: Vec<Option<&[u8]>> = Vec::new();
    let mut i = 0;
    while i < raw.len() && out.len() < limit {
        let b = raw[i];
        match b {
            b'"' => {
                let end = string_end(raw, i);
                let s = &raw[i..end.unwrap_or(raw.len())];
                let inner = &s[1..s.len().saturating_sub(usize::from(end.is_some())).max(1)];
                match stack.last().copied() {
                    Some(Ctx::Object(true)) => {
                        let kept = end.is_some()
                            && inner.len() <= MAX_KEPT_KEY
                            && inner
                                .iter()
                                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
                        if kept {
                            out.extend_from_slice(s);
                        } else {
                            placeholder(&mut out, inner.len());
                        }
                        if let Some(k) = keys.last_mut() {
                            *k = kept.then_some(inner);
                        }
                        if let Some(c) = stack.last_mut() {
                            *c = Ctx::Object(false);
                        }
                    }
                    _ => {
                        let key = keys.last().copied().flatten();
                        let keep = end.is_some()
                            && inner.len() <= MAX_KEPT_VALUE
                            && key.is_some_and(|k| KEEP.iter().any(|w| w.as_bytes() == k));
                        if keep {
                            out.extend_from_slice(s);
                        } else {
                            placeholder(&mut out, inner.len());
                        }
                    }
                }
                i = end.unwrap_or(raw.len());
            }
            b'{' => {
                stack.push(Ctx::Object(true));
                keys.push(None);
                out.push(b);
                i += 1;
            }
            b'[' => {
                stack.push(Ctx::Array);
                let inherited = keys.last().copied().flatten();
                keys.push(inherited);
                out.push(b);
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                keys.pop();
                out.push(b);
                i += 1;
            }
            b',' => {
                if let Some(Ctx::Object(_)) = stack.last() {
                    stack.pop();
                    stack.push(Ctx::Object(true));
                }
                out.push(b);
                i += 1;
            }
            b':' | b' ' | b'\t' | b'\n' | b'\r' => {
                out.push(b);
                i += 1;
            }
            _ => {
                // A bare token: a number or literal is kept, anything else
                // (text outside quotes, binary) is redacted.
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
                if is_json_token(t) {
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
    fn kept_values_are_short_and_output_is_cut() {
        let long_user = "u".repeat(300);
        let got = r(&format!(r#"{{"user":"{long_user}"}}"#));
        assert_eq!(got, r#"{"user":"<redacted: 300 bytes>"}"#);
        let many = format!("[{}]", vec!["1"; 5000].join(","));
        assert_eq!(redact(many.as_bytes(), 4096).len(), 4096);
    }
}
