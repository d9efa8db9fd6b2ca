//! tokenlord's native core. Pure-Rust domain modules, one concept each; the
//! Python binding is `py.rs`, compiled with the `python` feature.

pub mod batch;
pub mod dedupe;
pub mod error;
pub mod event;
pub mod fingerprint;
pub mod guard;
pub mod otlp;
pub mod outcome;
pub mod pretokenize;
pub mod redact;
pub mod rowbinary;
pub mod time;
pub mod tokenize;
pub mod waste;
pub mod window;

#[cfg(feature = "python")]
mod py;
