//! Token counting with the models' own byte-pair encodings.
//!
//! `o200k_base` and `cl100k_base` come from the `bpe-openai` crate, which is
//! exact against tiktoken. Text is always counted as ordinary text: a user
//! typing `<|endoftext|>` gets the tokens of those characters, never a
//! special token.

use bpe_openai::Tokenizer;

use crate::error::CoreError;

/// An encoding tokenlord can count with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    pub const ALL: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    pub fn from_name(name: &str) -> Result<Encoding, CoreError> {
        Encoding::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Encoding::ALL.iter().map(|e| e.name()).collect();
                CoreError::Config(format!(
                    "unknown encoding {name:?} (known: {})",
                    known.join(", ")
                ))
            })
    }

    fn tokenizer(self) -> &'static Tokenizer {
        match self {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }

    /// Number of tokens of `text` (ordinary text, no special tokens).
    pub fn count(self, text: &str) -> u64 {
        self.tokenizer().count(text) as u64
    }
}

/// Model name → encoding, by longest matching prefix.
#[derive(Debug, Clone)]
pub struct EncodingMap {
    rules: Vec<(String, Encoding)>,
    fallback: Encoding,
}

impl EncodingMap {
    pub fn new(rules: &[(String, String)], fallback: &str) -> Result<Self, CoreError> {
        let mut parsed = rules
            .iter()
            .map(|(prefix, enc)| Ok((prefix.clone(), Encoding::from_name(enc)?)))
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
        self.rules
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix.as_str()))
            .map_or((self.fallback, true), |(_, e)| (*e, false))
    }
}

impl Default for EncodingMap {
    fn default() -> Self {
        let rules: Vec<(String, String)> = [
            ("gpt-4o", "o200k_base"),
            ("gpt-4.1", "o200k_base"),
            ("gpt-4.5", "o200k_base"),
            ("gpt-5", "o200k_base"),
            ("o1", "o200k_base"),
            ("o3", "o200k_base"),
            ("o4", "o200k_base"),
            ("gpt-4", "cl100k_base"),
            ("gpt-3.5", "cl100k_base"),
        ]
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
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        assert_eq!(Encoding::O200kBase.count(""), 0);
        assert!(Encoding::Cl100kBase.count("<|endoftext|>") > 1);
    }

    #[test]
    fn longest_prefix_wins() {
        let m = EncodingMap::default();
        assert_eq!(m.lookup("gpt-4o-mini"), (Encoding::O200kBase, false));
        assert_eq!(m.lookup("gpt-4-turbo"), (Encoding::Cl100kBase, false));
        assert_eq!(m.lookup("llama-3.1-70b"), (Encoding::O200kBase, true));
        assert!(Encoding::from_name("nope").is_err());
    }
}
