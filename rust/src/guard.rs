//! What one message may cost: bounds on its fan-out (elements, rejections)
//! and isolation of a message the core fails on (docs/semantics.md,
//! "Fan-out limits" and "Poison messages").

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::batch::Rejection;
use crate::error::{CoreError, Reason};
use crate::event::Element;

/// Caps on what one message and one batch fan out to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Elements of one message; the rest is one `too_many_elements` rejection.
    pub max_elements: usize,
    /// Rejections of one message before the rest of it is one `too_many_rejections`.
    pub max_rejections_per_message: usize,
    /// Rejections of one batch before every further message's rest is one rejection.
    pub max_rejections_per_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_elements: 10_000,
            max_rejections_per_message: 100,
            max_rejections_per_batch: 10_000,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.max_elements == 0
            || self.max_rejections_per_message == 0
            || self.max_rejections_per_batch == 0
        {
            return Err(CoreError::Config(
                "max elements and rejections per message / batch must be >= 1".into(),
            ));
        }
        Ok(())
    }

    /// Whether one more rejection of a message is over a cap, given the
    /// message's and the batch's rejections so far.
    pub fn full(&self, in_message: usize, in_batch: usize) -> bool {
        in_message >= self.max_rejections_per_message || in_batch >= self.max_rejections_per_batch
    }
}

/// Pushes one rejection of a message (`value`) within the caps, given the
/// message's rejections so far; past a cap, unless it is the message's
/// `last` element, it becomes the rest of the message as one
/// `too_many_rejections`. Returns `true` when the caller must stop there.
pub fn push_rejection<'a>(
    limits: &Limits,
    value: &'a [u8],
    in_message: &mut usize,
    last: bool,
    rejected: &mut Vec<Rejection<'a>>,
    mut r: Rejection<'a>,
) -> bool {
    let over = !last && limits.full(*in_message, rejected.len());
    if over {
        r.reason = Reason::TooManyRejections;
        r.raw = rest_of(value, r.raw);
    }
    *in_message += 1;
    rejected.push(r);
    over
}

/// The bytes of `value` from the start of `part` to the end of `value`;
/// `part` itself when it is not a slice of `value`.
pub fn rest_of<'a>(value: &'a [u8], part: &'a [u8]) -> &'a [u8] {
    let start = (part.as_ptr() as usize).wrapping_sub(value.as_ptr() as usize);
    if start <= value.len() && start + part.len() <= value.len() {
        &value[start..]
    } else {
        part
    }
}

/// The raw bytes an element reports.
pub fn element_raw<'a>(el: &Element<'a>) -> &'a [u8] {
    match el {
        Element::Event { raw, .. } => raw,
        Element::Rejected(_, raw) => raw,
    }
}

/// Keeps the first `max` elements of a message; the rest of the message
/// (from the first element dropped to the end of the value) becomes one
/// `too_many_elements` rejection.
pub fn cap_elements<'a>(value: &'a [u8], elements: &mut Vec<Element<'a>>, max: usize) {
    if elements.len() > max {
        let rest = rest_of(value, element_raw(&elements[max]));
        elements.truncate(max);
        elements.push(Element::Rejected(Reason::TooManyElements, rest));
    }
}

/// Runs `f`; a panic in it (a bug the core hit on this input) becomes `None`.
pub fn isolate<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Fault injection for tests (`TOKENLORD_FAULT_POISON`): the core panics on a
/// message whose value contains `marker` (never set in production).
pub fn inject_poison(marker: &[u8], value: &[u8]) {
    if !marker.is_empty() && value.windows(marker.len()).any(|w| w == marker) {
        panic!("injected core failure (TOKENLORD_FAULT_POISON)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::split_message;

    #[test]
    fn the_rest_of_a_message_starts_at_the_first_element_dropped() {
        let value = b"[1, 2, {\"a\":1}, 4]";
        let mut els = split_message(value, 1 << 20);
        assert_eq!(els.len(), 4);
        cap_elements(value, &mut els, 2);
        assert_eq!(els.len(), 3);
        match &els[2] {
            Element::Rejected(Reason::TooManyElements, raw) => assert_eq!(*raw, b"{\"a\":1}, 4]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rest_of_a_foreign_slice_is_the_slice() {
        let a = b"abc".to_vec();
        let b = b"xyz".to_vec();
        assert_eq!(rest_of(&a, &a[1..2]), b"bc");
        assert_eq!(rest_of(&a, &b), b"xyz");
    }

    #[test]
    fn a_panic_is_isolated() {
        assert_eq!(isolate(|| 7), Some(7));
        assert_eq!(isolate(|| inject_poison(b"boom", b"..boom..")), None);
        assert_eq!(isolate(|| inject_poison(b"", b"boom")), Some(()));
    }
}
