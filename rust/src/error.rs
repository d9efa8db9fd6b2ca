//! The core's one error type and the rejection reason codes (docs/semantics.md).

use std::fmt;

/// Errors the core raises to its caller (never for bad event data: bad data is
/// a [`Reason`] attached to a rejection, and the stream goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A setting handed to the core is unusable (unknown encoding, bad price...).
    Config(String),
    /// Arguments of one call do not fit together (column lengths differ...).
    Input(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Config(m) => write!(f, "invalid configuration: {m}"),
            CoreError::Input(m) => write!(f, "invalid input: {m}"),
        }
    }
}

impl std::error::Error for CoreError {}

/// Which event field a reason code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    EventId,
    Ts,
    User,
    Model,
    Team,
    App,
    Provider,
    SessionId,
    InputTokens,
    OutputTokens,
    CachedInputTokens,
    ReasoningTokens,
    Prompt,
    Output,
    Fingerprint,
    Status,
    FinishReason,
    LatencyMs,
    Outcome,
    Value,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::Ts => "ts",
            Field::User => "user",
            Field::Model => "model",
            Field::Team => "team",
            Field::App => "app",
            Field::Provider => "provider",
            Field::SessionId => "session_id",
            Field::InputTokens => "input_tokens",
            Field::OutputTokens => "output_tokens",
            Field::CachedInputTokens => "cached_input_tokens",
            Field::ReasoningTokens => "reasoning_tokens",
            Field::Prompt => "prompt",
            Field::Output => "output",
            Field::Fingerprint => "fingerprint",
            Field::Status => "status",
            Field::FinishReason => "finish_reason",
            Field::LatencyMs => "latency_ms",
            Field::Outcome => "outcome",
            Field::Value => "value",
        }
    }
}

/// Why an input was rejected (docs/semantics.md reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidJson,
    NotAnObject,
    TooLarge,
    MissingField(Field),
    InvalidField(Field),
    OutOfRange(Field),
    MissingUsage,
    FutureTimestamp,
    Late,
    TooManyElements,
    TooManyRejections,
    Poison,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidJson => f.write_str("invalid_json"),
            Reason::NotAnObject => f.write_str("not_an_object"),
            Reason::TooLarge => f.write_str("too_large"),
            Reason::MissingField(x) => write!(f, "missing_field:{}", x.name()),
            Reason::InvalidField(x) => write!(f, "invalid_field:{}", x.name()),
            Reason::OutOfRange(x) => write!(f, "out_of_range:{}", x.name()),
            Reason::MissingUsage => f.write_str("missing_usage"),
            Reason::FutureTimestamp => f.write_str("future_timestamp"),
            Reason::Late => f.write_str("late"),
            Reason::TooManyElements => f.write_str("too_many_elements"),
            Reason::TooManyRejections => f.write_str("too_many_rejections"),
            Reason::Poison => f.write_str("poison"),
        }
    }
}
