//! Token counting with the models' own byte-pair encodings.
//!
//! `o200k_base` and `cl100k_base` come from the `bpe-openai` crate, which is
//! exact against tiktoken. Other encodings (Llama 3, Llama 4, anything in
//! tiktoken's ranks format) are loaded at run time from a directory
//! ([`load_dir`]). Text is always counted as ordinary text: a user typing
//! `<|endoftext|>` gets the tokens of those characters, never a special token.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, OnceLock};

use base64::prelude::{Engine, BASE64_STANDARD};
use bpe_openai::byte_pair_encoding::BytePairEncoding;
use bpe_openai::Tokenizer;
use hashbrown::{HashMap, HashSet};
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

use crate::error::CoreError;
use crate::pretokenize::{self, Family};

/// Pre-tokenization pattern of Llama 3 (`llama_models/llama3/tokenizer.py`),
/// the same as tiktoken's original `cl100k_base` pattern.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenization pattern of Llama 4 (`llama_models/llama4/tokenizer.py`),
/// the same as tiktoken's `o200k_base` pattern.
pub const LLAMA4_PATTERN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Encodings that are known by name but need a ranks file
/// (`TOKENLORD_TOKENIZER_DIR`), with their built-in patterns.
const FILE_BACKED: [(&str, &str); 2] = [("llama3", LLAMA3_PATTERN), ("llama4", LLAMA4_PATTERN)];

struct EncodingDef {
    name: &'static str,
    counter: Counter,
}

enum Counter {
    /// bpe-openai's encoder (the built-in OpenAI vocabularies).
    Bpe {
        tokenizer: &'static Tokenizer,
        /// Its pre-tokenization pattern (ASCII pieces are found without the regex).
        family: Family,
        /// Every token's bytes: a pre-tokenized piece that is a whole token
        /// counts 1 without running the encoder (most words are).
        singles: OnceLock<HashSet<&'static [u8]>>,
    },
    /// tiktoken's own merge rule over a ranks table (vocabularies from files:
    /// Llama 3 has tokens no chain of merges reaches, which tiktoken still
    /// emits for a whole piece, so only its exact rule gives its counts).
    Ranks(RankedBpe),
}

impl EncodingDef {
    fn built_in(name: &'static str, tokenizer: &'static Tokenizer, family: Family) -> Self {
        EncodingDef {
            name,
            counter: Counter::Bpe {
                tokenizer,
                family,
                singles: OnceLock::new(),
            },
        }
    }

    fn count(&self, text: &str) -> u64 {
        match &self.counter {
            Counter::Bpe {
                tokenizer,
                family,
                singles,
            } => {
                let singles = singles.get_or_init(|| {
                    let bpe: &'static BytePairEncoding = &tokenizer.bpe;
                    (0..bpe.num_tokens() as u32)
                        .map(|id| bpe.token_bytes(id))
                        .collect()
                });
                // All shipped encodings are tiktoken's: no Unicode normalization.
                pretokenize::split(text, Some(*family), |rest| {
                    tokenizer.split(rest).next().map(str::len)
                })
                .map(|piece| {
                    let bytes = piece.as_bytes();
                    if singles.contains(bytes) {
                        1
                    } else {
                        self.cached(bytes, || tokenizer.bpe.count(bytes) as u64)
                    }
                })
                .sum()
            }
            Counter::Ranks(r) => r
                .pre
                .split(text)
                .map(|piece| {
                    let bytes = piece.as_bytes();
                    if r.ranks.contains_key(bytes) {
                        1
                    } else if bytes.len() <= SHORT {
                        self.cached(bytes, || r.count_short(bytes))
                    } else {
                        r.count_long(bytes)
                    }
                })
                .sum(),
        }
    }

    /// Words recur (Zipf): short multi-token pieces are counted once per
    /// thread and remembered, in a bounded cache.
    fn cached(&self, piece: &[u8], count: impl FnOnce() -> u64) -> u64 {
        if piece.len() > SHORT {
            return count();
        }
        MERGED.with_borrow_mut(|caches| {
            let cache = caches
                .entry(self as *const EncodingDef as usize)
                .or_default();
            if let Some(n) = cache.get(piece) {
                return *n;
            }
            if cache.len() >= MERGED_MAX {
                cache.clear();
            }
            let n = count();
            cache.insert(piece.into(), n);
            n
        })
    }
}

/// A tiktoken vocabulary: ranks plus the pre-tokenization regex.
struct RankedBpe {
    ranks: HashMap<Box<[u8]>, u32>,
    /// Rank of every two-byte token, by `first << 8 | second` (`u32::MAX`: none).
    pairs: Vec<u32>,
    pre: Pretokenizer,
}

/// Pieces up to this many bytes merge with tiktoken's quadratic rule.
const SHORT: usize = 64;
/// Entries of the per-thread cache of merged pieces (~5 MB at most).
const MERGED_MAX: usize = 1 << 16;

/// Piece → tokens, for short pieces that are not one token.
type PieceCounts = HashMap<Box<[u8]>, u64>;

thread_local! {
    /// Per vocabulary (by address), this thread's remembered piece counts.
    static MERGED: std::cell::RefCell<HashMap<usize, PieceCounts>> =
        std::cell::RefCell::new(HashMap::new());
}

impl RankedBpe {
    fn new(ranks: HashMap<Box<[u8]>, u32>, pre: Pretokenizer) -> Self {
        let mut pairs = vec![u32::MAX; 1 << 16];
        for (token, rank) in &ranks {
            if let [a, b] = **token {
                pairs[usize::from(a) << 8 | usize::from(b)] = *rank;
            }
        }
        RankedBpe { ranks, pairs, pre }
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        self.ranks.get(bytes).copied()
    }

    /// Tokens of one piece that is not itself a token, under tiktoken's rule
    /// (`_byte_pair_merge`): repeatedly merge the adjacent pair of lowest
    /// rank, leftmost on ties, while the merged bytes are a token. Quadratic,
    /// fastest for short pieces (on the stack, first pair ranks from a table).
    fn count_short(&self, piece: &[u8]) -> u64 {
        const NONE: u32 = u32::MAX;
        let n = piece.len();
        debug_assert!((2..=SHORT).contains(&n));
        // (start, rank of the pair starting here) per part, plus two sentinels.
        let mut parts = [(0u32, NONE); SHORT + 1];
        for (i, part) in parts.iter_mut().enumerate().take(n - 1) {
            *part = (
                i as u32,
                self.pairs[usize::from(piece[i]) << 8 | usize::from(piece[i + 1])],
            );
        }
        parts[n - 1] = ((n - 1) as u32, NONE);
        parts[n] = (n as u32, NONE);
        let mut len = n + 1;
        let rank_at = |parts: &[(u32, u32)], len: usize, i: usize| {
            if i + 3 < len {
                self.rank(&piece[parts[i].0 as usize..parts[i + 3].0 as usize])
                    .unwrap_or(NONE)
            } else {
                NONE
            }
        };
        loop {
            let (mut i, mut rank) = (0, NONE);
            for (j, p) in parts[..len - 1].iter().enumerate() {
                if p.1 < rank {
                    (i, rank) = (j, p.1);
                }
            }
            if rank == NONE {
                break;
            }
            if i > 0 {
                parts[i - 1].1 = rank_at(&parts, len, i - 1);
            }
            parts[i].1 = rank_at(&parts, len, i);
            parts.copy_within(i + 2..len, i + 1);
            len -= 1;
        }
        (len - 1) as u64
    }

    /// The same merges in O(n log n) with a heap and a linked list, so one
    /// 1 MB "word" takes a fraction of a second, not the quadratic minutes.
    fn count_long(&self, piece: &[u8]) -> u64 {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let n = piece.len();
        // Part i starts at byte i; next[i] is where it ends (the next part's start).
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some(r) = self.rank(&piece[i..i + 2]) {
                heap.push(Reverse((r, i, i + 1, i + 2)));
            }
        }
        let mut parts = n as u64;
        while let Some(Reverse((_, left, right, end))) = heap.pop() {
            if !alive[left] || next[left] != right || next[right] != end {
                continue; // stale: one side merged since this pair was pushed
            }
            alive[right] = false;
            next[left] = end;
            if end < n {
                prev[end] = left;
            }
            parts -= 1;
            let before = prev[left];
            if before != usize::MAX {
                if let Some(r) = self.rank(&piece[before..end]) {
                    heap.push(Reverse((r, before, left, end)));
                }
            }
            if end < n {
                if let Some(r) = self.rank(&piece[left..next[end]]) {
                    heap.push(Reverse((r, left, end, next[end])));
                }
            }
        }
        parts
    }
}

/// Splits text with a tiktoken pattern; a pattern flagged as look-ahead has
/// its last character dropped from the match (bpe-openai's trick to emulate
/// `\s+(?!\S)` without look-around).
struct Pretokenizer {
    re: Regex,
    lookahead: Vec<bool>,
    /// The tiktoken pattern it is, if it is one (ASCII pieces without the regex).
    family: Option<Family>,
}

impl Pretokenizer {
    fn new(patterns: &[(String, bool)], family: Option<Family>) -> Result<Self, String> {
        let pats: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
        let re = Regex::new_many(&pats).map_err(|e| e.to_string())?;
        Ok(Pretokenizer {
            re,
            lookahead: patterns.iter().map(|(_, l)| *l).collect(),
            family,
        })
    }

    fn split<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        pretokenize::split(text, self.family, |rest| self.first(rest))
    }

    /// The length of the regex's piece at the start of `rest`.
    fn first(&self, rest: &str) -> Option<usize> {
        let m = self.re.find(Input::new(rest).anchored(Anchored::Yes))?;
        let mut end = m.end();
        if self.lookahead[m.pattern().as_usize()] {
            let dropped = rest[..end].chars().next_back().map_or(0, char::len_utf8);
            if end > dropped {
                end -= dropped;
            }
        }
        Some(end)
    }
}

static O200K_BASE: LazyLock<EncodingDef> =
    LazyLock::new(|| EncodingDef::built_in("o200k_base", bpe_openai::o200k_base(), Family::O200k));
static CL100K_BASE: LazyLock<EncodingDef> = LazyLock::new(|| {
    EncodingDef::built_in("cl100k_base", bpe_openai::cl100k_base(), Family::Cl100k)
});

/// Encodings loaded from files, by name (a later load of a name replaces it).
static LOADED: LazyLock<Mutex<HashMap<String, &'static EncodingDef>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Directories already loaded → the names they provided.
static LOADED_DIRS: LazyLock<Mutex<HashMap<PathBuf, Vec<String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An encoding tokenlord can count with (cheap to copy).
#[derive(Clone, Copy)]
pub struct Encoding(&'static EncodingDef);

impl PartialEq for Encoding {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Encoding {}

impl fmt::Debug for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoding({})", self.0.name)
    }
}

impl Encoding {
    pub fn o200k_base() -> Encoding {
        Encoding(&O200K_BASE)
    }

    pub fn cl100k_base() -> Encoding {
        Encoding(&CL100K_BASE)
    }

    /// Every encoding available now: built-in, then loaded, by name.
    pub fn available() -> Vec<Encoding> {
        let mut loaded: Vec<Encoding> = lock(&LOADED).values().map(|d| Encoding(d)).collect();
        loaded.sort_by_key(|e| e.name());
        let mut all = vec![Encoding::o200k_base(), Encoding::cl100k_base()];
        all.extend(loaded);
        all
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The encoding called `name`; `Ok(None)` for a known file-backed
    /// encoding (`llama3`, `llama4`) whose file is not loaded.
    pub fn resolve(name: &str) -> Result<Option<Encoding>, CoreError> {
        if let Some(e) = Encoding::available().into_iter().find(|e| e.name() == name) {
            return Ok(Some(e));
        }
        if FILE_BACKED.iter().any(|(n, _)| *n == name) {
            return Ok(None);
        }
        let mut known: Vec<&str> = Encoding::available().iter().map(|e| e.name()).collect();
        known.extend(FILE_BACKED.iter().map(|(n, _)| *n));
        known.dedup();
        Err(CoreError::Config(format!(
            "unknown encoding {name:?} (known: {}; other tiktoken-format vocabularies load \
             from TOKENLORD_TOKENIZER_DIR)",
            known.join(", ")
        )))
    }

    /// The encoding called `name`, which must be available now.
    pub fn from_name(name: &str) -> Result<Encoding, CoreError> {
        Encoding::resolve(name)?.ok_or_else(|| {
            CoreError::Config(format!(
                "encoding {name:?} needs its ranks file: put {name}.tiktoken (or \
                 {name}/tokenizer.model) in a directory and set TOKENLORD_TOKENIZER_DIR to it"
            ))
        })
    }

    /// Number of tokens of `text` (ordinary text, no special tokens).
    pub fn count(self, text: &str) -> u64 {
        self.0.count(text)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Loads every vocabulary in `dir` (once per process per directory) and
/// returns the encoding names it provides.
///
/// Layouts: `NAME.tiktoken` (pattern in `NAME.pattern`) or
/// `NAME/tokenizer.model` (pattern in `NAME/tokenizer.pattern`), as PyPI
/// `llama-models` ships them. `llama3` and `llama4` have built-in patterns.
pub fn load_dir(dir: &Path) -> Result<Vec<String>, CoreError> {
    let key = dir.canonicalize().map_err(|e| {
        CoreError::Config(format!(
            "tokenizer directory {}: {e} (TOKENLORD_TOKENIZER_DIR must be an existing directory)",
            dir.display()
        ))
    })?;
    if let Some(names) = lock(&LOADED_DIRS).get(&key) {
        return Ok(names.clone());
    }
    let mut found = vocabulary_files(&key)?;
    if found.is_empty() {
        return Err(CoreError::Config(format!(
            "tokenizer directory {}: no NAME.tiktoken or NAME/tokenizer.model files in it",
            key.display()
        )));
    }
    found.sort();
    let mut names = Vec::new();
    for (name, ranks, pattern_file) in found {
        let pattern = read_pattern(&name, &pattern_file)?;
        let def: &'static EncodingDef = Box::leak(Box::new(EncodingDef {
            name: Box::leak(name.clone().into_boxed_str()),
            counter: Counter::Ranks(load_ranked(&ranks, &pattern)?),
        }));
        lock(&LOADED).insert(name.clone(), def);
        names.push(name);
    }
    lock(&LOADED_DIRS).insert(key, names.clone());
    Ok(names)
}

/// `(name, ranks file, pattern file)` for each vocabulary in `dir`.
fn vocabulary_files(dir: &Path) -> Result<Vec<(String, PathBuf, PathBuf)>, CoreError> {
    let io = |e: std::io::Error| CoreError::Config(format!("{}: {e}", dir.display()));
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let name = stem.to_owned();
        if path.is_dir() && path.join("tokenizer.model").is_file() {
            let file_name = path.file_name().and_then(|s| s.to_str()).unwrap_or(stem);
            found.push((
                file_name.to_owned(),
                path.join("tokenizer.model"),
                path.join("tokenizer.pattern"),
            ));
        } else if path.extension().is_some_and(|e| e == "tiktoken") && path.is_file() {
            found.push((name, path.clone(), path.with_extension("pattern")));
        }
    }
    Ok(found)
}

fn read_pattern(name: &str, file: &Path) -> Result<String, CoreError> {
    if file.is_file() {
        return fs::read_to_string(file)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| CoreError::Config(format!("{}: {e}", file.display())));
    }
    FILE_BACKED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| (*p).to_owned())
        .ok_or_else(|| {
            CoreError::Config(format!(
                "no pre-tokenization pattern for encoding {name:?}: write the tiktoken \
                 pat_str into {}",
                file.display()
            ))
        })
}

/// Reads a tiktoken ranks file: `base64(token) rank` per line, ranks 0..n.
pub fn read_ranks(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut ranked = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(b64), Some(rank), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("line {}: expected `base64-token rank`", i + 1));
        };
        let bytes = BASE64_STANDARD
            .decode(b64)
            .map_err(|e| format!("line {}: bad base64 ({e})", i + 1))?;
        let rank: u32 = rank
            .parse()
            .map_err(|_| format!("line {}: rank {rank:?} is not a number", i + 1))?;
        ranked.push((rank, bytes));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    for (i, (rank, _)) in ranked.iter().enumerate() {
        if *rank as usize != i {
            return Err(format!(
                "ranks must be 0..{} without gaps; {i} is missing",
                ranked.len()
            ));
        }
    }
    if ranked.len() < 256 {
        return Err(format!(
            "{} tokens: not a byte-level BPE vocabulary",
            ranked.len()
        ));
    }
    Ok(ranked.into_iter().map(|(_, b)| b).collect())
}

/// tiktoken's pattern → bpe-openai pretokenizer patterns. regex-automata has
/// no look-around; tiktoken patterns end in `\s+(?!\S)|\s+`, which bpe-openai
/// emulates with a one-character look-ahead pattern (as for its built-ins).
fn split_patterns(pattern: &str) -> Result<Vec<(String, bool)>, String> {
    const TAIL: &str = r"|\s+(?!\S)|\s+";
    if let Some(head) = pattern.strip_suffix(TAIL) {
        return Ok(vec![
            (format!(r"{head}|\s+$"), false),
            (r"\s+\s".to_owned(), true),
            (r"\s+".to_owned(), false),
        ]);
    }
    if ["(?!", "(?=", "(?<"].iter().any(|l| pattern.contains(l)) {
        return Err(format!(
            "look-around is only supported as the tiktoken tail {TAIL:?}; rewrite the pattern"
        ));
    }
    Ok(vec![(pattern.to_owned(), false)])
}

fn load_ranked(file: &Path, pattern: &str) -> Result<RankedBpe, CoreError> {
    let bad = |why: String| CoreError::Config(format!("{}: {why}", file.display()));
    let text = fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let tokens = read_ranks(&text).map_err(bad)?;
    let patterns = split_patterns(pattern).map_err(|e| bad(format!("pattern: {e}")))?;
    let pre = Pretokenizer::new(&patterns, Family::of_pattern(pattern))
        .map_err(|e| bad(format!("pattern: {e}")))?;
    let count = tokens.len();
    let ranks: HashMap<Box<[u8]>, u32> = tokens
        .into_iter()
        .zip(0u32..)
        .map(|(t, r)| (t.into_boxed_slice(), r))
        .collect();
    if ranks.len() != count {
        return Err(bad("the same token appears twice".into()));
    }
    Ok(RankedBpe::new(ranks, pre))
}

/// Model name → encoding, by longest matching prefix (case-insensitive).
#[derive(Debug, Clone)]
pub struct EncodingMap {
    /// Lowercased prefix → encoding; `None` for a file-backed encoding that
    /// is not loaded (such models count with the fallback, estimated).
    rules: Vec<(String, Option<Encoding>)>,
    fallback: Encoding,
}

/// The default model → encoding rules (also `TOKENLORD_MODEL_ENCODINGS`).
pub const DEFAULT_RULES: [(&str, &str); 16] = [
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("llama-3", "llama3"),
    ("llama3", "llama3"),
    ("meta-llama/llama-3", "llama3"),
    ("meta-llama-3", "llama3"),
    ("llama-4", "llama4"),
    ("llama4", "llama4"),
    ("meta-llama/llama-4", "llama4"),
];

impl EncodingMap {
    pub fn new(rules: &[(String, String)], fallback: &str) -> Result<Self, CoreError> {
        let mut parsed = rules
            .iter()
            .map(|(prefix, enc)| Ok((prefix.to_lowercase(), Encoding::resolve(enc)?)))
            .collect::<Result<Vec<_>, CoreError>>()?;
        // Longest prefix first, so the first match is the most specific.
        parsed.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(EncodingMap {
            rules: parsed,
            fallback: Encoding::from_name(fallback)?,
        })
    }

    /// The encoding for `model` and whether it is the fallback (an estimate).
    pub fn lookup(&self, model: &str) -> (Encoding, bool) {
        let model = model.to_lowercase();
        match self
            .rules
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix.as_str()))
        {
            Some((_, Some(e))) => (*e, false),
            _ => (self.fallback, true),
        }
    }
}

impl Default for EncodingMap {
    fn default() -> Self {
        let rules: Vec<(String, String)> = DEFAULT_RULES
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        EncodingMap::new(&rules, "o200k_base")
            .unwrap_or_else(|_| unreachable!("built-in map is valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_strings() {
        // Reference values from tiktoken.
        assert_eq!(Encoding::cl100k_base().count("hello world"), 2);
        assert_eq!(Encoding::o200k_base().count("hello world"), 2);
        assert_eq!(Encoding::o200k_base().count(""), 0);
        assert!(Encoding::cl100k_base().count("<|endoftext|>") > 1);
    }

    #[test]
    fn longest_prefix_wins() {
        let m = EncodingMap::default();
        assert_eq!(m.lookup("gpt-4o-mini"), (Encoding::o200k_base(), false));
        assert_eq!(m.lookup("GPT-4-Turbo"), (Encoding::cl100k_base(), false));
        assert_eq!(m.lookup("mistral-large"), (Encoding::o200k_base(), true));
        assert!(Encoding::from_name("nope").is_err());
    }

    #[test]
    fn file_backed_encodings_fall_back_until_loaded() {
        if LOADED.lock().unwrap().contains_key("llama3") {
            return; // another test in this process loaded one
        }
        let m = EncodingMap::default();
        assert_eq!(m.lookup("llama-3.1-70b"), (Encoding::o200k_base(), true));
        assert!(Encoding::resolve("llama3").unwrap().is_none());
        let err = Encoding::from_name("llama3").unwrap_err().to_string();
        assert!(err.contains("TOKENLORD_TOKENIZER_DIR"), "{err}");
    }

    #[test]
    fn ranks_files_are_validated() {
        assert!(read_ranks("IQ== 0\nIg== 2\n")
            .unwrap_err()
            .contains("missing"));
        assert!(read_ranks("IQ==\n").unwrap_err().contains("line 1"));
        assert!(read_ranks("@@ 0\n").unwrap_err().contains("base64"));
        assert!(read_ranks("IQ== 0\n")
            .unwrap_err()
            .contains("not a byte-level"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        /// Llama 3's and Llama 4's patterns (read from files) split as their
        /// regex does, with the ASCII fast path (pretokenize.rs) and without.
        #[test]
        fn llama_patterns_split_as_their_regex(
            s in "([a-zA-Z0-9 \t\n\r'/(.\u{b}]|é|É|ſ|日|٣|\u{a0}|\u{85}|\u{301}){0,30}"
        ) {
            static BOTH: LazyLock<Vec<(Pretokenizer, Pretokenizer)>> = LazyLock::new(|| {
                [LLAMA3_PATTERN, LLAMA4_PATTERN]
                    .iter()
                    .map(|pattern| {
                        let patterns = split_patterns(pattern).unwrap();
                        let fast = Pretokenizer::new(&patterns, Family::of_pattern(pattern)).unwrap();
                        (fast, Pretokenizer::new(&patterns, None).unwrap())
                    })
                    .collect()
            });
            for ((fast, slow), family) in BOTH.iter().zip([Family::Cl100k, Family::O200k]) {
                proptest::prop_assert_eq!(fast.family, Some(family));
                let want: Vec<&str> = slow.split(&s).collect();
                proptest::prop_assert_eq!(want.concat(), s.clone());
                proptest::prop_assert_eq!(fast.split(&s).collect::<Vec<_>>(), want);
            }
        }
    }

    #[test]
    fn tiktoken_tail_becomes_lookahead_patterns() {
        let p = split_patterns(LLAMA3_PATTERN).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0].0.ends_with(r"|\s+$") && p[1].1);
        assert!(split_patterns(r"a(?=b)").is_err());
        assert_eq!(split_patterns(r"\w+|\s+").unwrap().len(), 1);
    }

    #[test]
    fn long_pieces_merge_like_short_ones() {
        // Heap merging (long pieces) must equal tiktoken's quadratic rule.
        let mut lines: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
        for t in ["ab", "abab", "ba", "aba", "bb", "abb"] {
            lines.push(t.as_bytes().to_vec());
        }
        let ranked = RankedBpe::new(
            lines
                .into_iter()
                .zip(0u32..)
                .map(|(t, r)| (t.into_boxed_slice(), r))
                .collect(),
            Pretokenizer::new(&[(r"\w+".to_owned(), false)], None).unwrap(),
        );
        let mut seed = 7u64;
        for len in 2..=SHORT {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    b"ab"[(seed >> 33) as usize % 2]
                })
                .collect();
            assert_eq!(
                ranked.count_short(&piece),
                ranked.count_long(&piece),
                "{piece:?}"
            );
        }
    }

    #[test]
    fn a_ranks_directory_loads_and_counts() {
        // A byte-level vocabulary plus a few merges, with the llama3 pattern.
        let dir = std::env::temp_dir().join(format!("tl-tok-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut lines: Vec<String> = (0u8..=255).map(|b| BASE64_STANDARD.encode([b])).collect();
        for merged in ["he", "ll", "hell", "hello"] {
            lines.push(BASE64_STANDARD.encode(merged));
        }
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{l} {i}\n"))
            .collect();
        fs::write(dir.join("tiny.tiktoken"), text).unwrap();
        fs::write(dir.join("tiny.pattern"), LLAMA3_PATTERN).unwrap();
        assert_eq!(load_dir(&dir).unwrap(), vec!["tiny".to_owned()]);
        let tiny = Encoding::from_name("tiny").unwrap();
        assert_eq!(tiny.count("hello"), 1);
        assert_eq!(tiny.count("hello hello"), 3); // "hello", " ", "hello"
        assert_eq!(tiny.count("help"), 3); // "hel" is no token: he + l + p
        let rules = vec![("tiny-".to_owned(), "tiny".to_owned())];
        let m = EncodingMap::new(&rules, "o200k_base").unwrap();
        assert_eq!(m.lookup("Tiny-1"), (tiny, false));
        // A directory without vocabularies is an error that says so.
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert!(load_dir(&empty)
            .unwrap_err()
            .to_string()
            .contains("no NAME.tiktoken"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
