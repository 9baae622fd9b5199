//! Editing JSON documents in tests.

use rollguard::patch::Step;
use serde_json::{Map, Value};

/// Sets `value` at `path` in place, creating missing (or null) parent
/// objects; false when the path runs through a scalar or a missing element.
pub fn set(doc: &mut Value, path: &[Step], value: Value) -> bool {
    let Some((first, rest)) = path.split_first() else {
        *doc = value;
        return true;
    };
    let child = match first {
        Step::Key(key) => {
            if doc.is_null() {
                *doc = Value::Object(Map::new());
            }
            match doc.as_object_mut() {
                Some(object) => object.entry(key.as_ref()).or_insert(Value::Null),
                None => return false,
            }
        }
        Step::Index(index) => match doc.as_array_mut().and_then(|a| a.get_mut(*index)) {
            Some(child) => child,
            None => return false,
        },
    };
    set(child, rest, value)
}

/// The value at `path`, if present.
pub fn get<'a>(doc: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, step| match step {
        Step::Key(key) => node.get(key.as_ref()),
        Step::Index(index) => node.get(*index),
    })
}
