//! The words of enums whose values each have one (`label()` and `ALL`):
//! reading a word back, and listing the accepted ones for an error message.

/// The value whose label is `text`.
pub(crate) fn parse<T: Copy>(all: &[T], label: fn(T) -> &'static str, text: &str) -> Option<T> {
    all.iter().copied().find(|value| label(*value) == text)
}

/// Every label, comma-separated, in `all`'s order.
pub(crate) fn list<T: Copy>(all: &[T], label: fn(T) -> &'static str) -> String {
    all.iter()
        .map(|value| label(*value))
        .collect::<Vec<_>>()
        .join(", ")
}
