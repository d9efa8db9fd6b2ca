//! Fingerprints: what the waste rules need of an event's text, and nothing
//! the text can be read back from (docs/semantics.md, "Fingerprints").
//!
//! The same code runs in the worker (events that carry text) and in a
//! gateway (`tokenlord.fingerprint`, events that carry only the fingerprint),
//! so both get the same verdicts. Every hash of text is keyed with the
//! organisation's secret (SipHash-2-4 under a key derived from it), so a
//! stored hash of a short prompt cannot be matched against a dictionary by
//! anyone without the secret.
//!
//! One pass over the bytes: words are split on ASCII whitespace, case-folded
//! eight bytes at a time while they are hashed (no copy, no allocation per
//! word); the SimHash votes are kept as bit-sliced counters (a few word
//! operations per shingle instead of 64 updates).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Field, Reason};

/// The wire format version written (`"v"`); version 1 prints (no `mh`, no
/// `rep3`) are still read.
pub const VERSION: u64 = 2;

/// Words a side needs for a MinHash sketch (`mh`) and a short-window
/// repetition share (`rep3`): below, a text is too short for either to mean
/// anything (a one-line answer looks like every other one-line answer).
pub const SKETCH_MIN_WORDS: u64 = 50;
/// Buckets of the one-permutation MinHash sketch: one byte each.
pub const SKETCH_BYTES: usize = 64;
/// A MinHash sketch: per bucket, the low byte of the smallest shingle hash.
pub type Sketch = [u8; SKETCH_BYTES];

/// The SipHash key derived from the organisation's secret, and its public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintKey {
    k0: u64,
    k1: u64,
    /// First 4 bytes after the key in the derivation digest: tells a
    /// fingerprint made under another secret (`"key"` on the wire).
    id: u32,
}

const KEY_CONTEXT: &[u8] = b"tokenlord fingerprint v1\0";

impl FingerprintKey {
    /// SHA-256("tokenlord fingerprint v1\0" ‖ secret): bytes 0..16 are the
    /// SipHash key (two little-endian u64), bytes 16..20 the key id.
    pub fn derive(secret: &[u8]) -> FingerprintKey {
        let mut h = Sha256::new();
        h.update(KEY_CONTEXT);
        h.update(secret);
        let d = h.finalize();
        let word = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap_or([0; 8]));
        FingerprintKey {
            k0: word(0),
            k1: word(8),
            id: u32::from_be_bytes([d[16], d[17], d[18], d[19]]),
        }
    }

    /// The key id as 8 lowercase hex digits.
    pub fn id_hex(&self) -> String {
        format!("{:08x}", self.id)
    }
}

impl Default for FingerprintKey {
    /// The key of the empty secret: fingerprints are then not secret.
    fn default() -> Self {
        FingerprintKey::derive(b"")
    }
}

// ---------------------------------------------------------------- SipHash-2-4

#[derive(Clone, Copy)]
struct Sip([u64; 4]);

impl Sip {
    #[inline(always)]
    fn new(k: &FingerprintKey) -> Sip {
        Sip([
            k.k0 ^ 0x736f_6d65_7073_6575,
            k.k1 ^ 0x646f_7261_6e64_6f6d,
            k.k0 ^ 0x6c79_6765_6e65_7261,
            k.k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    #[inline(always)]
    fn round(&mut self) {
        let v = &mut self.0;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline(always)]
    fn block(&mut self, m: u64) {
        self.0[3] ^= m;
        self.round();
        self.round();
        self.0[0] ^= m;
    }

    /// Absorbs the last (partial) block of a message of `len` bytes.
    #[inline(always)]
    fn finish(mut self, tail: u64, len: usize) -> u64 {
        self.block(tail | (len as u64) << 56);
        self.0[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.0[0] ^ self.0[1] ^ self.0[2] ^ self.0[3]
    }
}

/// Up to 8 bytes as a little-endian u64 (zero-padded).
#[inline(always)]
fn load(b: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(buf)
}

/// ASCII upper-case letters of 8 packed bytes to lower case (others kept).
#[inline(always)]
fn fold8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    let ge_a = low7.wrapping_add(0x3f3f_3f3f_3f3f_3f3f); // byte >= 'A'
    let gt_z = low7.wrapping_add(0x2525_2525_2525_2525); // byte > 'Z'
    let upper = (ge_a ^ gt_z) & !x & HIGH;
    x | upper >> 2
}

/// Bytes `s..e` of `text` (fewer than 8) as a little-endian u64,
/// zero-padded: one unaligned load from the text wherever 8 bytes can be
/// read there (copying a word's tail to a buffer on the stack first stalled
/// the load that read it back: 12 % of fingerprinting, perf).
#[inline(always)]
fn load_tail(text: &[u8], s: usize, e: usize) -> u64 {
    let n = e - s;
    debug_assert!(n < 8);
    if n == 0 {
        return 0;
    }
    let mask = (1u64 << (8 * n)) - 1;
    if let Some(b) = text.get(s..s + 8) {
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) & mask
    } else if text.len() >= 8 {
        let p = text.len() - 8; // p < s
        let x = u64::from_le_bytes(text[p..].try_into().unwrap_or([0; 8]));
        x >> (8 * (s - p)) & mask
    } else {
        load(&text[s..e])
    }
}

/// SipHash-2-4 of `data`.
pub fn siphash24(k: &FingerprintKey, data: &[u8]) -> u64 {
    sip_at(k, data, 0, data.len(), false)
}

/// SipHash-2-4 of bytes `s..e` of `text`, ASCII case-folded if `fold`.
#[inline(always)]
fn sip_at(k: &FingerprintKey, text: &[u8], s: usize, e: usize, fold: bool) -> u64 {
    let mut st = Sip::new(k);
    let f = |x: u64| if fold { fold8(x) } else { x };
    let mut i = s;
    while i + 8 <= e {
        st.block(f(u64::from_le_bytes(
            text[i..i + 8].try_into().unwrap_or([0; 8]),
        )));
        i += 8;
    }
    st.finish(f(load_tail(text, i, e)), e - s)
}

/// The splitmix64 finaliser: spreads the bits of a shingle's word hashes.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ z >> 30).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ z >> 27).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ z >> 31
}

/// The hash of the 3-gram of words `a b c` (0 stands for a missing word).
#[inline(always)]
fn shingle(a: u64, b: u64, c: u64) -> u64 {
    mix(a ^ b.rotate_left(21) ^ c.rotate_left(42))
}

// ------------------------------------------------------------------ SimHash

/// 64 vote counters. Bit `8j + k` of each hash is added to byte `j` of
/// `lanes[k]` (eight byte-wide counters per word, no carries between them);
/// every 255 hashes the bytes are moved to the 32-bit `counts`.
struct Votes {
    lanes: [u64; 8],
    pending: u32,
    counts: [u32; 64],
    n: u64,
}

const LANE_ONES: u64 = 0x0101_0101_0101_0101;

impl Votes {
    fn new() -> Votes {
        Votes {
            lanes: [0; 8],
            pending: 0,
            counts: [0; 64],
            n: 0,
        }
    }

    #[inline(always)]
    fn add(&mut self, h: u64) {
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            *lane += h >> k & LANE_ONES;
        }
        self.n += 1;
        self.pending += 1;
        if self.pending == 255 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            for j in 0..8 {
                self.counts[8 * j + k] += (*lane >> (8 * j) & 0xff) as u32;
            }
            *lane = 0;
        }
        self.pending = 0;
    }

    /// Bit b is set when more than half of the hashes have bit b set.
    fn simhash(mut self) -> u64 {
        self.flush();
        let mut out = 0u64;
        for (bit, ones) in self.counts.iter().enumerate() {
            if 2 * u64::from(*ones) > self.n {
                out |= 1 << bit;
            }
        }
        out
    }
}

// ------------------------------------------------------------------ MinHash

/// One-permutation MinHash of the shingles: bucket `h >> 58` keeps the
/// smallest `h` that falls into it; an empty bucket takes the value of the
/// next non-empty one (cyclically); each bucket is then the low byte of its
/// value. Two texts' sketches agree in about `J + (1 − J) / 256` of the
/// buckets, J the Jaccard similarity of their shingle sets.
struct MinHash {
    mins: [u64; SKETCH_BYTES],
    /// Bit `i` set when a shingle fell into bucket `i` (`u64::MAX` is a
    /// possible hash, so emptiness is tracked apart).
    filled: u64,
}

impl MinHash {
    fn new() -> MinHash {
        MinHash {
            mins: [u64::MAX; SKETCH_BYTES],
            filled: 0,
        }
    }

    #[inline(always)]
    fn add(&mut self, h: u64) {
        let i = (h >> 58) as usize;
        self.mins[i] = self.mins[i].min(h);
        self.filled |= 1 << i;
    }

    fn sketch(&self) -> Sketch {
        let mut out = [0u8; SKETCH_BYTES];
        for (i, o) in out.iter_mut().enumerate() {
            let at = (0..SKETCH_BYTES)
                .map(|d| (i + d) % SKETCH_BYTES)
                .find(|j| self.filled >> j & 1 == 1)
                .unwrap_or(i);
            *o = self.mins[at] as u8;
        }
        out
    }
}

/// Buckets in which two sketches agree.
#[inline]
pub fn sketch_matches(a: &Sketch, b: &Sketch) -> u64 {
    a.iter().zip(b.iter()).filter(|(x, y)| x == y).count() as u64
}

// --------------------------------------------------------------- repetition

/// Words needed before repetition is judged by words; below, 16-byte chunks
/// of a long normalized text stand in for words (one 100 kB "word").
const REPEAT_MIN_WORDS: usize = 50;
const REPEAT_MIN_BYTES: usize = 2000;
const CHUNK: usize = 16;
const WORD_WINDOW: usize = 10;
const CHUNK_WINDOW: usize = 4;

/// An insert-only set of hashes for [`repetition`]: open addressing with
/// linear probing at most half full, indexed by the top bits (the values
/// are keyed hashes already, so they are not hashed again), its slots
/// reused by the next call on the same thread (hashbrown's set, allocated
/// per call, was ~20 % of fingerprinting, perf).
#[derive(Default)]
struct Seen {
    slots: Vec<u64>,
    shift: u32,
    /// 0 marks an empty slot: whether the hash 0 was inserted.
    zero: bool,
}

impl Seen {
    fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(16);
        reuse(&mut self.slots, cap);
        self.slots.resize(cap, 0);
        self.shift = 64 - cap.trailing_zeros();
        self.zero = false;
    }

    /// Adds `h`; false when it was there already.
    #[inline(always)]
    fn insert(&mut self, h: u64) -> bool {
        if h == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = h;
                    return true;
                }
                v if v == h => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }
}

thread_local! {
    static SEEN: std::cell::RefCell<Seen> = std::cell::RefCell::new(Seen::default());
}

/// (bytes of units inside a window of `n` units seen before, bytes of all
/// units), the units given by their hashes and lengths.
fn repetition(hashes: &[u64], lens: impl Fn(usize) -> u64, n: usize) -> (u64, u64) {
    let total: u64 = (0..hashes.len()).map(&lens).sum();
    if hashes.len() < n {
        return (0, total);
    }
    let repeated = SEEN.with_borrow_mut(|seen| {
        seen.reset(hashes.len() - n + 1);
        repeated_in(hashes, &lens, n, seen)
    });
    (repeated, total)
}

/// The repeated bytes of [`repetition`], `seen` empty and large enough.
fn repeated_in(hashes: &[u64], lens: &impl Fn(usize) -> u64, n: usize, seen: &mut Seen) -> u64 {
    let (mut repeated, mut marked_to) = (0u64, 0usize);
    // The window's hash, fold(acc = u ^ rotl(acc, 7)) over its n units, rolled
    // on: drop the oldest unit (rotated 7n by now), take in the next.
    let oldest = (7 * n % 64) as u32;
    let mut h = hashes[..n]
        .iter()
        .fold(0u64, |acc, u| u ^ acc.rotate_left(7));
    for j in 0..=hashes.len() - n {
        if j > 0 {
            h = h.rotate_left(7) ^ hashes[j - 1].rotate_left(oldest) ^ hashes[j + n - 1];
        }
        if !seen.insert(h) {
            repeated += (marked_to.max(j)..j + n).map(lens).sum::<u64>();
            marked_to = j + n;
        }
    }
    repeated
}

// ---------------------------------------------------------------- the print

/// What the text of one side (prompt or output) leaves behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Side {
    /// SipHash of the word hashes in order: the normalized text, exactly
    /// (prompts only; 0 for an output).
    pub hash: u64,
    /// SimHash of the word 3-grams (near-identical text: few bits differ).
    pub sim: u64,
    /// SimHash of the words, order ignored (reordered text: few bits differ).
    pub bag: u64,
    /// (repeated bytes, all bytes) of the words (`repetition`).
    pub repeat: (u64, u64),
    /// The same with windows of 3 words (prompts with at least
    /// `SKETCH_MIN_WORDS` words; else (0, 0)): repetition with every few
    /// words changed ("noised" padding) still shows.
    pub repeat3: (u64, u64),
    /// MinHash sketch of the word 3-grams (sides with at least
    /// `SKETCH_MIN_WORDS` words): reworded or reordered text keeps many.
    pub mh: Option<Sketch>,
    pub words: u64,
    pub bytes: u64,
}

/// Fingerprints of an event's text (`None`: no such text, or only whitespace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub prompt: Option<Side>,
    pub output: Option<Side>,
}

impl Fingerprint {
    pub fn of(k: &FingerprintKey, prompt: Option<&str>, output: Option<&str>) -> Fingerprint {
        Fingerprint {
            prompt: prompt.and_then(|t| side(k, t.as_bytes(), true)),
            // No rule looks at the exact hash of an output: it is not made.
            output: output.and_then(|t| side(k, t.as_bytes(), false)),
        }
    }

    /// What `_events` keeps of it, enough to rebuild the waste state on
    /// restore: (prompt hash, prompt SimHash, output SimHash, flags), flags
    /// bit 0 = a prompt side, bit 1 = an output side; the sketches apart
    /// ([`Fingerprint::stored_sketches`]).
    pub fn stored(&self) -> (u64, u64, u64, u8) {
        let p = self.prompt.unwrap_or_default();
        let o = self.output.unwrap_or_default();
        let flags = u8::from(self.prompt.is_some()) | u8::from(self.output.is_some()) << 1;
        (p.hash, p.sim, o.sim, flags)
    }

    /// The sketches of the prompt and of the output side as `_events` keeps
    /// them (`fp_prompt_mh`, `fp_output_mh`): hex, empty when there is none.
    pub fn stored_sketches(&self) -> (String, String) {
        let hex = |s: &Option<Side>| {
            s.and_then(|s| s.mh)
                .map_or_else(String::new, |m| sketch_hex(&m))
        };
        (hex(&self.prompt), hex(&self.output))
    }

    /// The inverse of [`Fingerprint::stored`] and [`Fingerprint::stored_sketches`]
    /// (sizes and repetition are not kept; a sketch that is not 128 hex
    /// digits counts as none).
    pub fn from_stored(
        (prompt, prompt_sim, output_sim, flags): (u64, u64, u64, u8),
        prompt_mh: &str,
        output_mh: &str,
    ) -> Fingerprint {
        Fingerprint {
            prompt: (flags & 1 != 0).then_some(Side {
                hash: prompt,
                sim: prompt_sim,
                mh: parse_sketch(prompt_mh),
                ..Side::default()
            }),
            output: (flags & 2 != 0).then_some(Side {
                sim: output_sim,
                mh: parse_sketch(output_mh),
                ..Side::default()
            }),
        }
    }

    /// Text wins: each side from its text when there is any, else from `fp`.
    pub fn or(self, fp: &Fingerprint, prompt_text: bool, output_text: bool) -> Fingerprint {
        Fingerprint {
            prompt: if prompt_text { self.prompt } else { fp.prompt },
            output: if output_text { self.output } else { fp.output },
        }
    }
}

/// ASCII whitespace: space, \t, \n, \v, \f, \r.
const SPACE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 9;
    while c <= 13 {
        t[c] = true;
        c += 1;
    }
    t[b' ' as usize] = true;
    t
};

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte `b` of `x` with `m < b < n` (exact per byte:
/// no carries cross bytes; bytes >= 0x80 never match). `n <= 128`.
#[inline(always)]
fn bytes_between(x: u64, m: u64, n: u64) -> u64 {
    let low = x & (LOW_BITS * 127);
    (LOW_BITS * (127 + n)).wrapping_sub(low) & !x & (low + LOW_BITS * (127 - m)) & HIGH_BITS
}

/// The high bit of each ASCII whitespace byte of 8 packed bytes.
#[inline(always)]
fn space_bytes(x: u64) -> u64 {
    bytes_between(x, 8, 14) | bytes_between(x, 31, 33)
}

/// The first index >= `i` whose byte is (`space`) or is not (`!space`)
/// ASCII whitespace, or `text.len()`: eight bytes at a time.
#[inline(always)]
fn scan(text: &[u8], mut i: usize, space: bool) -> usize {
    let n = text.len();
    while i + 8 <= n {
        let x = u64::from_le_bytes(text[i..i + 8].try_into().unwrap_or([0; 8]));
        let m = if space {
            space_bytes(x)
        } else {
            !space_bytes(x) & HIGH_BITS
        };
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && SPACE[text[i] as usize] != space {
        i += 1;
    }
    i
}

/// The words of `text`: (start, end) byte ranges between ASCII whitespace.
#[inline(always)]
fn word_ranges(text: &[u8], mut each: impl FnMut(usize, usize)) {
    let n = text.len();
    let mut i = 0;
    loop {
        // Mostly one space between two words: look at it before scanning.
        if i < n && SPACE[text[i] as usize] {
            i = if i + 1 < n && !SPACE[text[i + 1] as usize] {
                i + 1
            } else {
                scan(text, i, false)
            };
        }
        if i >= n {
            return;
        }
        let end = scan(text, i + 1, true);
        each(i, end);
        i = end;
    }
}

/// Empties `v` for about `n` items; a buffer grown for a huge text is dropped
/// instead of kept (per-thread scratch space stays small).
fn reuse<T>(v: &mut Vec<T>, n: usize) {
    if v.capacity() > (4 * n).max(1 << 16) {
        *v = Vec::new();
    }
    v.clear();
}

/// The word hashes and byte ranges of a side.
type Words = (Vec<u64>, Vec<(usize, usize)>);

thread_local! {
    /// The words of the side being printed (buffers reused).
    static WORDS: std::cell::RefCell<Words> = Default::default();
}

fn side(k: &FingerprintKey, text: &[u8], with_hash: bool) -> Option<Side> {
    WORDS.with_borrow_mut(|(hashes, ranges)| {
        reuse(hashes, text.len() / 6);
        reuse(ranges, text.len() / 6);
        side_of_words(k, text, with_hash, hashes, ranges)
    })
}

fn side_of_words(
    k: &FingerprintKey,
    text: &[u8],
    with_hash: bool,
    hashes: &mut Vec<u64>,
    ranges: &mut Vec<(usize, usize)>,
) -> Option<Side> {
    word_ranges(text, |s, e| {
        hashes.push(sip_at(k, text, s, e, true));
        ranges.push((s, e));
    });
    if hashes.is_empty() {
        return None;
    }
    let mut whole = Sip::new(k);
    let (mut shingles, mut bag) = (Votes::new(), Votes::new());
    let sketched = hashes.len() as u64 >= SKETCH_MIN_WORDS;
    let mut minhash = MinHash::new();
    for (i, w) in hashes.iter().enumerate() {
        whole.block(*w);
        bag.add(*w);
        if i + 2 < hashes.len() {
            let s = shingle(*w, hashes[i + 1], hashes[i + 2]);
            shingles.add(s);
            if sketched {
                minhash.add(s);
            }
        }
    }
    if hashes.len() < 3 {
        let at = |i: usize| hashes.get(i).copied().unwrap_or(0);
        shingles.add(shingle(at(0), at(1), 0));
    }
    let word_len = |i: usize| (ranges[i].1 - ranges[i].0) as u64;
    let words_bytes: u64 = (0..hashes.len()).map(word_len).sum();
    let repeat = if hashes.len() >= REPEAT_MIN_WORDS {
        repetition(hashes, word_len, WORD_WINDOW)
    } else if words_bytes + hashes.len() as u64 > REPEAT_MIN_BYTES as u64 {
        // (the normalized text: words and one space between each two)
        // Few, long words: 16-byte chunks of the normalized text.
        let mut norm = Vec::with_capacity(text.len());
        for (i, (s, e)) in ranges.iter().enumerate() {
            if i > 0 {
                norm.push(b' ');
            }
            norm.extend(text[*s..*e].iter().map(u8::to_ascii_lowercase));
        }
        let chunks: Vec<&[u8]> = norm.chunks(CHUNK).collect();
        let ch: Vec<u64> = chunks.iter().map(|c| siphash24(k, c)).collect();
        repetition(&ch, |i| chunks[i].len() as u64, CHUNK_WINDOW)
    } else {
        (0, 0)
    };
    let repeat3 = if sketched && with_hash {
        repetition(hashes, word_len, 3)
    } else {
        (0, 0)
    };
    Some(Side {
        hash: if with_hash {
            whole.finish(0, hashes.len() * 8) | 1
        } else {
            0
        },
        sim: shingles.simhash(),
        bag: bag.simhash(),
        repeat,
        repeat3,
        mh: sketched.then(|| minhash.sketch()),
        words: hashes.len() as u64,
        bytes: text.len() as u64,
    })
}

// --------------------------------------------------------------- the wire

/// The `fingerprint` field as sent: `{"v":1,"key":…,"prompt":{…},"output":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub key_id: u32,
    pub print: Fingerprint,
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

/// A sketch as 128 lowercase hex digits, bucket 0 first.
pub fn sketch_hex(m: &Sketch) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 * SKETCH_BYTES);
    for b in m {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The inverse of [`sketch_hex`] (either case); `None` unless 128 hex digits.
pub fn parse_sketch(s: &str) -> Option<Sketch> {
    let b = s.as_bytes();
    if b.len() != 2 * SKETCH_BYTES || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; SKETCH_BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn side_json(out: &mut String, name: &str, s: &Side, prompt: bool) {
    use std::fmt::Write;
    let _ = write!(out, ",\"{name}\":{{");
    if prompt {
        let _ = write!(out, "\"hash\":\"{}\",", hex(s.hash));
    }
    let _ = write!(
        out,
        "\"sim\":\"{}\",\"bag\":\"{}\",\"rep\":[{},{}],",
        hex(s.sim),
        hex(s.bag),
        s.repeat.0,
        s.repeat.1,
    );
    if prompt {
        let _ = write!(out, "\"rep3\":[{},{}],", s.repeat3.0, s.repeat3.1);
    }
    if let Some(m) = &s.mh {
        let _ = write!(out, "\"mh\":\"{}\",", sketch_hex(m));
    }
    let _ = write!(out, "\"words\":{},\"bytes\":{}}}", s.words, s.bytes);
}

impl Fingerprint {
    /// The JSON text of the `fingerprint` field (sides without text left out;
    /// the output's exact hash is not sent: no rule uses it).
    pub fn to_json(&self, k: &FingerprintKey) -> String {
        let mut out = format!("{{\"v\":{VERSION},\"key\":\"{}\"", k.id_hex());
        if let Some(p) = &self.prompt {
            side_json(&mut out, "prompt", p, true);
        }
        if let Some(o) = &self.output {
            side_json(&mut out, "output", o, false);
        }
        out.push('}');
        out
    }
}

fn parse_hex(s: &str, digits: usize) -> Option<u64> {
    if s.len() != digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn hex_member(side: &Map<String, Value>, name: &str) -> Option<u64> {
    parse_hex(side.get(name)?.as_str()?, 16)
}

/// A `[repeated, total]` member with `repeated <= total <= bytes`.
fn rep_member(side: &Map<String, Value>, name: &str, bytes: u64) -> Option<(u64, u64)> {
    let [repeated, total] = side.get(name)?.as_array()?.as_slice() else {
        return None;
    };
    let (repeated, total) = (repeated.as_u64()?, total.as_u64()?);
    (repeated <= total && total <= bytes).then_some((repeated, total))
}

/// One side of a print of version `v` (`None`: not valid). Only the
/// prompt's `hash` and `rep3` are read; `rep3` and `mh` only in version 2.
fn decode_side(v: &Value, prompt: bool, version: u64) -> Option<Side> {
    let side = v.as_object()?;
    let nat = |name: &str| side.get(name)?.as_u64();
    let (words, bytes) = (nat("words")?, nat("bytes")?);
    let (repeated, total) = rep_member(side, "rep", bytes)?;
    if words == 0 || words > bytes {
        return None;
    }
    let (mut repeat3, mut mh) = ((0, 0), None);
    if version >= 2 {
        if prompt {
            repeat3 = rep_member(side, "rep3", bytes)?;
        }
        // A sketch exactly when the side has enough words for one.
        mh = match side.get("mh") {
            None if words < SKETCH_MIN_WORDS => None,
            Some(m) if words >= SKETCH_MIN_WORDS => Some(parse_sketch(m.as_str()?)?),
            _ => return None,
        };
    }
    Some(Side {
        hash: if prompt {
            hex_member(side, "hash")? | 1
        } else {
            0
        },
        sim: hex_member(side, "sim")?,
        bag: hex_member(side, "bag")?,
        repeat: (repeated, total),
        repeat3,
        mh,
        words,
        bytes,
    })
}

impl Wire {
    /// Decodes the JSON value of a `fingerprint` field. Unknown members are
    /// ignored (a later version may add some); a version other than 1 or 2, a
    /// missing member or an inconsistent value is `invalid_field:fingerprint`.
    pub fn decode(json: &str) -> Result<Wire, Reason> {
        let bad = Reason::InvalidField(Field::Fingerprint);
        // Read as a JSON value: escapes decoded, a repeated member's last
        // value wins (as for the event's own members).
        let value: Value = serde_json::from_str(json).map_err(|_| bad)?;
        let wire = value.as_object().ok_or(bad)?;
        let version = wire.get("v").and_then(Value::as_u64).ok_or(bad)?;
        if !(1..=VERSION).contains(&version) {
            return Err(bad);
        }
        let key = wire.get("key").and_then(Value::as_str).ok_or(bad)?;
        let key_id = parse_hex(key, 8).ok_or(bad)? as u32;
        let side = |name: &str, prompt| match wire.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => decode_side(v, prompt, version).map(Some).ok_or(bad),
        };
        Ok(Wire {
            key_id,
            print: Fingerprint {
                prompt: side("prompt", true)?,
                output: side("output", false)?,
            },
        })
    }

    /// The print, if it was made under `k` (else `invalid_field:fingerprint`:
    /// hashes under another secret match nothing this worker remembers).
    pub fn under(&self, k: &FingerprintKey) -> Result<Fingerprint, Reason> {
        if self.key_id == k.id {
            Ok(self.print)
        } else {
            Err(Reason::InvalidField(Field::Fingerprint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference key of the SipHash paper: bytes 00..0f.
    fn paper_key() -> FingerprintKey {
        let b: Vec<u8> = (0u8..16).collect();
        FingerprintKey {
            k0: u64::from_le_bytes(b[..8].try_into().unwrap()),
            k1: u64::from_le_bytes(b[8..].try_into().unwrap()),
            id: 0,
        }
    }

    #[test]
    fn siphash_matches_the_papers_vectors() {
        let k = paper_key();
        let msg: Vec<u8> = (0u8..64).collect();
        // SipHash-2-4 64-bit test vectors (Aumasson & Bernstein, vectors.h).
        assert_eq!(siphash24(&k, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&k, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&k, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(&k, &msg[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(&k, &msg[..63]), 0x958a_324c_eb06_4572);
    }

    #[test]
    fn space_bytes_are_exactly_ascii_whitespace() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[at] = b;
                let got = space_bytes(u64::from_le_bytes(bytes));
                let want = if SPACE[b as usize] {
                    0x80u64 << (8 * at)
                } else {
                    0
                };
                assert_eq!(got, want, "byte {b:#x} at {at}");
            }
        }
        let mut words = Vec::new();
        word_ranges(
            b"  one\ttwo  three\x0bfour five-and-more-than-eight\n",
            |s, e| words.push((s, e)),
        );
        assert_eq!(words, [(2, 5), (6, 9), (11, 16), (17, 21), (22, 46)]);
    }

    #[test]
    fn tails_load_the_same_from_anywhere_in_the_text() {
        let k = FingerprintKey::default();
        for len in 0..24 {
            let text: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            for s in 0..=len {
                for e in s..=len {
                    assert_eq!(
                        sip_at(&k, &text, s, e, false),
                        siphash24(&k, &text[s..e]),
                        "{len} {s} {e}"
                    );
                    if e - s < 8 {
                        assert_eq!(load_tail(&text, s, e), load(&text[s..e]), "{len} {s} {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn folding_is_ascii_lowercase() {
        let k = FingerprintKey::default();
        for s in [
            "Hello",
            "WORLD-Zz@[`{",
            "ÄÖü ÉÀ",
            "already lower",
            "Mixed123ABCxyzXYZ",
        ] {
            let lower = s.to_ascii_lowercase();
            assert_eq!(
                sip_at(&k, s.as_bytes(), 0, s.len(), true),
                siphash24(&k, lower.as_bytes()),
                "{s}"
            );
        }
        for b in 0u8..=255 {
            let x = u64::from_le_bytes([b; 8]);
            assert_eq!(
                fold8(x),
                u64::from_le_bytes([b.to_ascii_lowercase(); 8]),
                "{b}"
            );
        }
    }

    #[test]
    fn bit_sliced_votes_are_majorities() {
        let hs: Vec<u64> = (0..1000u64).map(|i| mix(i * 7 + 3)).collect();
        for n in [1, 2, 3, 7, 64, 999, 1000] {
            let mut v = Votes::new();
            hs[..n].iter().for_each(|h| v.add(*h));
            let want = (0..64).fold(0u64, |acc, bit| {
                let ones = hs[..n].iter().filter(|h| *h >> bit & 1 == 1).count();
                if 2 * ones > n {
                    acc | 1 << bit
                } else {
                    acc
                }
            });
            assert_eq!(v.simhash(), want, "{n}");
        }
    }

    #[test]
    fn case_and_whitespace_do_not_matter_words_do() {
        let k = FingerprintKey::derive(b"secret");
        let a = Fingerprint::of(&k, Some("Hello  World\tagain"), None);
        let b = Fingerprint::of(&k, Some(" hello world\nAGAIN "), None);
        let c = Fingerprint::of(&k, Some("hello world again!"), None);
        assert_eq!(a.prompt.unwrap().hash, b.prompt.unwrap().hash);
        assert_ne!(a.prompt.unwrap().hash, c.prompt.unwrap().hash);
        assert_eq!(
            Fingerprint::of(&k, Some(" \n\t"), Some("")),
            Fingerprint::default()
        );
    }

    #[test]
    fn the_key_changes_every_hash() {
        let text = "the same prompt under two secrets";
        let a = Fingerprint::of(&FingerprintKey::derive(b"one"), Some(text), None)
            .prompt
            .unwrap();
        let b = Fingerprint::of(&FingerprintKey::derive(b"two"), Some(text), None)
            .prompt
            .unwrap();
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.sim, b.sim);
        assert_ne!(a.bag, b.bag);
    }

    #[test]
    fn reordered_words_keep_the_bag() {
        let k = FingerprintKey::default();
        let a = Fingerprint::of(&k, Some("one two three four five six"), None)
            .prompt
            .unwrap();
        let b = Fingerprint::of(&k, Some("six five four three two one"), None)
            .prompt
            .unwrap();
        assert_eq!(a.bag, b.bag);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn repetition_marks_repeated_windows() {
        let k = FingerprintKey::default();
        let looped = vec!["the same phrase again"; 100].join(" ");
        let s = Fingerprint::of(&k, None, Some(&looped)).output.unwrap();
        assert!(s.repeat.0 * 100 >= 90 * s.repeat.1, "{:?}", s.repeat);
        let aaa = "a".repeat(100_000);
        let s = Fingerprint::of(&k, Some(&aaa), None).prompt.unwrap();
        assert_eq!(s.words, 1);
        assert!(s.repeat.0 * 100 >= 99 * s.repeat.1, "{:?}", s.repeat);
        let short = Fingerprint::of(&k, Some("just a few words"), None)
            .prompt
            .unwrap();
        assert_eq!(short.repeat, (0, 0));
    }

    #[test]
    fn sketches_see_reordered_text_and_tell_unrelated_text() {
        let k = FingerprintKey::derive(b"secret");
        let sentence = |i: u64| {
            format!(
                "sentence {i} says something about topic {} in words.",
                i * 7
            )
        };
        let text = |order: &[u64]| {
            order
                .iter()
                .map(|i| sentence(*i))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mh = |t: &str| {
            Fingerprint::of(&k, Some(t), None)
                .prompt
                .unwrap()
                .mh
                .unwrap()
        };
        let forward: Vec<u64> = (0..30).collect();
        let shuffled: Vec<u64> = (0..30).map(|i| i * 7 % 30).collect();
        let other: Vec<u64> = (100..130).collect();
        let (a, b, c) = (mh(&text(&forward)), mh(&text(&shuffled)), mh(&text(&other)));
        assert!(sketch_matches(&a, &b) >= 40, "{}", sketch_matches(&a, &b));
        assert!(sketch_matches(&a, &c) <= 12, "{}", sketch_matches(&a, &c));
        assert_eq!(parse_sketch(&sketch_hex(&a)), Some(a));
        assert_eq!(parse_sketch(&sketch_hex(&a).to_uppercase()), Some(a));
        // Under 50 words: no sketch.
        assert_eq!(
            Fingerprint::of(&k, Some(&text(&[1, 2, 3])), None)
                .prompt
                .unwrap()
                .mh,
            None
        );
    }

    #[test]
    fn the_wire_form_round_trips_and_rejects_what_it_must() {
        let k = FingerprintKey::derive(b"org secret");
        let fp = Fingerprint::of(
            &k,
            Some("Summarise this report please"),
            Some("It says things."),
        );
        let json = fp.to_json(&k);
        let wire = Wire::decode(&json).unwrap();
        assert_eq!(wire.under(&k), Ok(fp));
        let other = FingerprintKey::derive(b"another secret");
        assert_eq!(
            wire.under(&other),
            Err(Reason::InvalidField(Field::Fingerprint))
        );
        let bad = Err(Reason::InvalidField(Field::Fingerprint));
        for j in [
            json.replace("\"v\":2", "\"v\":3"),
            json.replace("\"v\":2", "\"v\":0"),
            json.replace("\"v\":2", "\"v\":2.0"),
            json.replace("\"v\":2,", ""),
            json.replace("\"rep3\":[0,0],", ""),
            // A sketch on a side too short for one.
            json.replace(
                "\"rep3\":[0,0],",
                &format!("\"rep3\":[0,0],\"mh\":\"{}\",", "ab".repeat(64)),
            ),
            json.replace("\"hash\"", "\"h\""),
            json.replace("\"words\":4", "\"words\":0"),
            r#"{"v":1,"key":"zz"}"#.to_string(),
            "[1]".to_string(),
            "{}".to_string(),
        ] {
            assert_eq!(Wire::decode(&j).map(|w| w.print), bad, "{j}");
        }
        // A long side carries a sketch; it must be 128 hex digits.
        let long = ["alpha beta gamma delta epsilon"; 12].join(" ");
        let fp = Fingerprint::of(&k, Some(&long), Some(&long));
        let json = fp.to_json(&k);
        assert_eq!(Wire::decode(&json).unwrap().under(&k), Ok(fp));
        let mh = sketch_hex(&fp.prompt.unwrap().mh.unwrap());
        assert_eq!(
            Wire::decode(&json.replacen(&mh, &mh[2..], 1)).map(|w| w.print),
            bad
        );
        assert_eq!(
            Wire::decode(&json.replacen(&format!(",\"mh\":\"{mh}\""), "", 1)).map(|w| w.print),
            bad
        );
        // Version 1 prints (no rep3, no sketches) are still read: no sketch.
        let v1 = json.replace("\"v\":2", "\"v\":1");
        let old = Wire::decode(&v1).unwrap().under(&k).unwrap();
        assert_eq!(old.prompt.unwrap().mh, None);
        assert_eq!(old.prompt.unwrap().repeat3, (0, 0));
        assert_eq!(old.prompt.unwrap().sim, fp.prompt.unwrap().sim);
        // Sides may be left out; unknown members are ignored.
        let empty = format!("{{\"v\":1,\"key\":\"{}\",\"x\":[1,2]}}", k.id_hex());
        assert_eq!(
            Wire::decode(&empty).unwrap().under(&k),
            Ok(Fingerprint::default())
        );
    }
}
