//! Pre-tokenization without the regex where ASCII decides.
//!
//! tiktoken splits text into pieces with one of two patterns before merging
//! bytes: cl100k_base's (also Llama 3's) and o200k_base's (also Llama 4's).
//! The regex (a lazy DFA, one anchored search per piece) was about a third of
//! the time of counting tokens (perf, issue 18). Most pieces of real text are
//! ASCII, where both patterns reduce to a few byte classes: [`Family::piece`]
//! finds such a piece's end with a table lookup per byte, and gives up
//! (`None`) as soon as the answer depends on a non-ASCII character or on the
//! end of the text; [`split`] then asks the regex for that one piece. The
//! pieces are the regex's, byte for byte (unit tests compare both on random
//! text; `benchmarks/tokenize_bench.py` compares the counts with tiktoken's).

use crate::tokenize::{LLAMA3_PATTERN, LLAMA4_PATTERN};

/// The two tiktoken pre-tokenization patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Cl100k,
    /// Letters split by case (`[Lu]*[Ll]+` or `[Lu]+[Ll]*`, each with an
    /// optional contraction), `/` kept after punctuation; otherwise as Cl100k.
    O200k,
}

const UPPER: u8 = 1;
const LOWER: u8 = 2;
const DIGIT: u8 = 4;
/// `\s`: `\t`, `\n`, `\v`, `\f`, `\r`, space.
const SPACE: u8 = 8;
/// `\r`, `\n`.
const NEWLINE: u8 = 16;
/// A byte of a non-ASCII character: the fast path gives up.
const OTHER: u8 = 32;
const LETTER: u8 = UPPER | LOWER;

/// The class bits of every byte (0: ASCII punctuation or control).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            OTHER
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c.is_ascii_lowercase() {
            LOWER
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b'\r' || c == b'\n' {
            SPACE | NEWLINE
        } else if c == b' ' || (c >= 9 && c <= 13) {
            SPACE
        } else {
            0
        };
        b += 1;
    }
    t
};

/// The class of byte `i`; past the end, OTHER (the regex decides there).
#[inline(always)]
fn class(t: &[u8], i: usize) -> u8 {
    t.get(i).map_or(OTHER, |b| CLASS[*b as usize])
}

/// The first index >= `i` whose byte has none of `bits`, or None when that
/// byte is non-ASCII or the end.
#[inline(always)]
fn run(t: &[u8], mut i: usize, bits: u8) -> Option<usize> {
    while i < t.len() && CLASS[t[i] as usize] & bits != 0 {
        i += 1;
    }
    (class(t, i) & OTHER == 0).then_some(i)
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `i`: its end, `Some(i)` when there is
/// none, None when a non-ASCII byte (`ſ` folds to `s`) or the end decides.
#[inline(always)]
fn contraction(t: &[u8], i: usize) -> Option<usize> {
    if t.get(i) != Some(&b'\'') {
        return Some(i);
    }
    let c1 = *t.get(i + 1)?;
    if c1 >= 0x80 {
        return None;
    }
    let second = match c1.to_ascii_lowercase() {
        b's' | b't' | b'm' | b'd' => return Some(i + 2),
        b'r' | b'v' => b'e',
        b'l' => b'l',
        _ => return Some(i),
    };
    let c2 = *t.get(i + 2)?;
    if c2 >= 0x80 {
        return None;
    }
    Some(if c2.to_ascii_lowercase() == second {
        i + 3
    } else {
        i
    })
}

impl Family {
    /// The family of a tiktoken pattern (as written in tiktoken's source).
    pub fn of_pattern(pattern: &str) -> Option<Family> {
        if pattern == LLAMA3_PATTERN {
            Some(Family::Cl100k)
        } else if pattern == LLAMA4_PATTERN {
            Some(Family::O200k)
        } else {
            None
        }
    }

    /// The end of the piece that starts at `at` (`at < t.len()`), or None
    /// when a non-ASCII byte or the end of the text could change it.
    #[inline]
    pub fn piece(self, t: &[u8], at: usize) -> Option<usize> {
        let c0 = class(t, at);
        if c0 & OTHER != 0 {
            return None;
        }
        if self == Family::Cl100k && t[at] == b'\'' {
            let end = contraction(t, at)?;
            if end > at {
                return Some(end);
            }
        }
        // Letters, after at most one character that is none of \r \n, a
        // letter or a digit.
        let letters = if c0 & (NEWLINE | LETTER | DIGIT) == 0 {
            at + 1
        } else {
            at
        };
        if class(t, letters) & OTHER != 0 {
            return None;
        }
        match self {
            Family::Cl100k => {
                let end = run(t, letters, LETTER)?;
                if end > letters {
                    return Some(end);
                }
            }
            Family::O200k => {
                // [Lu]*[Ll]+ or else [Lu]+[Ll]*: in ASCII the upper-case run,
                // then the lower-case run, then a contraction.
                let upper = run(t, letters, UPPER)?;
                let lower = run(t, upper, LOWER)?;
                if lower > letters {
                    return contraction(t, lower);
                }
            }
        }
        if c0 & DIGIT != 0 {
            // \p{N}{1,3}
            let mut end = at + 1;
            while end < at + 3 {
                let c = class(t, end);
                if c & OTHER != 0 {
                    return None;
                }
                if c & DIGIT == 0 {
                    break;
                }
                end += 1;
            }
            return Some(end);
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (o200k: `[\r\n/]*`)
        let punct = if t[at] == b' ' { at + 1 } else { at };
        let mut end = punct;
        while end < t.len() && CLASS[t[end] as usize] == 0 {
            end += 1;
        }
        if end > punct {
            if class(t, end) & OTHER != 0 {
                return None;
            }
            let slash = self == Family::O200k;
            while end < t.len() && (t[end] == b'\r' || t[end] == b'\n' || (slash && t[end] == b'/'))
            {
                end += 1;
            }
            return Some(end);
        }
        // Whitespace W, followed by a non-space ASCII character: up to its
        // last newline (`\s*[\r\n]+`), else all but its last character
        // (`\s+(?!\S)`), else the one character (`\s+`).
        let end = run(t, at, SPACE)?;
        if let Some(nl) = t[at..end].iter().rposition(|b| *b == b'\r' || *b == b'\n') {
            return Some(at + nl + 1);
        }
        Some(if end - at >= 2 { end - 1 } else { end })
    }
}

/// The pieces of `text`: where `family` decides, without the regex; else
/// `slow(rest)`, the length of the regex's piece at the start of `rest`
/// (None or 0: no more pieces).
pub fn split<'a>(
    text: &'a str,
    family: Option<Family>,
    mut slow: impl FnMut(&'a str) -> Option<usize> + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    let bytes = text.as_bytes();
    let mut last = 0;
    std::iter::from_fn(move || {
        if last >= text.len() {
            return None;
        }
        let end = match family.and_then(|f| f.piece(bytes, last)) {
            Some(end) => end,
            None => last + slow(&text[last..]).filter(|n| *n > 0)?,
        };
        let piece = &text[last..end];
        last = end;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// bpe-openai's tokenizer of the family: its regex split is the reference.
    fn tokenizer(family: Family) -> &'static bpe_openai::Tokenizer {
        match family {
            Family::Cl100k => bpe_openai::cl100k_base(),
            Family::O200k => bpe_openai::o200k_base(),
        }
    }

    fn regex_pieces(family: Family, text: &str) -> Vec<&str> {
        tokenizer(family).split(text).collect()
    }

    fn fast_pieces(family: Family, text: &str) -> Vec<&str> {
        let tokenizer = tokenizer(family);
        split(text, Some(family), |rest| {
            tokenizer.split(rest).next().map(str::len)
        })
        .collect()
    }

    /// Characters where the two patterns' branches meet: both cases,
    /// digits, every kind of ASCII space, apostrophes and contractions,
    /// slashes, punctuation and controls, and non-ASCII letters, digits,
    /// marks, spaces and case folds (ſ folds to s, K to k).
    const ALPHABET: &[&str] = &[
        "a", "b", "s", "t", "r", "e", "v", "l", "m", "d", "S", "T", "R", "E", "L", "D", "X", "0",
        "7", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{b}", "\u{c}", "'", "/", "(", ".", "-",
        "\u{0}", "\u{1f}", "\u{7f}", "é", "É", "ſ", "\u{212a}", "日", "٣", "\u{301}", "\u{85}",
        "\u{a0}", "\u{2003}", "😀", "ǅ", "ʰ",
    ];

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(0..ALPHABET.len(), 0..24)
            .prop_map(|ix| ix.into_iter().map(|i| ALPHABET[i]).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn cl100k_pieces_are_the_regex_pieces(s in text()) {
            prop_assert_eq!(fast_pieces(Family::Cl100k, &s), regex_pieces(Family::Cl100k, &s));
        }

        #[test]
        fn o200k_pieces_are_the_regex_pieces(s in text()) {
            prop_assert_eq!(fast_pieces(Family::O200k, &s), regex_pieces(Family::O200k, &s));
        }

        #[test]
        fn ascii_text_needs_the_regex_only_at_its_end(s in "[ -~\t\n\r]{0,40}") {
            for family in [Family::Cl100k, Family::O200k] {
                let tokenizer = tokenizer(family);
                let left_after: std::cell::RefCell<Vec<&str>> = Default::default();
                let fast: Vec<&str> = split(&s, Some(family), |rest| {
                    let n = tokenizer.split(rest).next().map(str::len);
                    left_after.borrow_mut().push(&rest[n.unwrap_or(0)..]);
                    n
                })
                .collect();
                let left_after = left_after.borrow();
                prop_assert_eq!(&fast, &regex_pieces(family, &s));
                // Only the end of the text is left to the regex: a contraction's
                // two characters, or whitespace.
                let at_end = |r: &&str| r.len() <= 2 || r.bytes().all(|b| b.is_ascii_whitespace());
                prop_assert!(left_after.iter().all(at_end), "regex pieces before {:?} in {:?}", left_after, s);
            }
        }
    }

    #[test]
    fn known_splits() {
        let cases: [(Family, &str, &[&str]); 6] = [
            (Family::O200k, "HELLO world", &["HELLO", " world"]),
            (
                Family::O200k,
                "don't  HeLLo'S",
                &["don't", " ", " He", "LLo'S"],
            ),
            (
                Family::Cl100k,
                "don't  HeLLo'S",
                &["don", "'t", " ", " HeLLo", "'S"],
            ),
            (
                Family::Cl100k,
                "x = 12345;\n\n  y",
                &["x", " =", " ", "123", "45", ";\n\n", " ", " y"],
            ),
            (Family::O200k, "a/b //c\n", &["a", "/b", " //", "c", "\n"]),
            (Family::O200k, "(héllo) 東京", &["(héllo", ")", " 東京"]),
        ];
        for (family, text, want) in cases {
            assert_eq!(fast_pieces(family, text), want, "{family:?} {text:?}");
            assert_eq!(
                regex_pieces(family, text),
                want,
                "{family:?} {text:?} (regex)"
            );
        }
    }

    #[test]
    fn families_of_the_patterns() {
        assert_eq!(Family::of_pattern(LLAMA3_PATTERN), Some(Family::Cl100k));
        assert_eq!(Family::of_pattern(LLAMA4_PATTERN), Some(Family::O200k));
        assert_eq!(Family::of_pattern(r"\w+|\s+"), None);
    }
}
