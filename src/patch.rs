//! Writing into the raw JSON document and the JSON Patch of those writes
//! ([`Writes`]). The patch names only the places written, so every field the
//! typed Kubernetes structs do not know is left as it was.

use std::borrow::Cow;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

/// One step of a path into a JSON document. Keys are mostly field names
/// known at compile time: those are borrowed, not copied, so building and
/// cloning a path allocates only for keys made at run time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Key(Cow<'static, str>),
    Index(usize),
}

impl From<&'static str> for Step {
    fn from(key: &'static str) -> Self {
        Step::Key(Cow::Borrowed(key))
    }
}

impl From<String> for Step {
    fn from(key: String) -> Self {
        Step::Key(Cow::Owned(key))
    }
}

impl From<usize> for Step {
    fn from(index: usize) -> Self {
        Step::Index(index)
    }
}

/// Builds a path from keys and indexes: `path!["spec", "containers", 0]`
/// (an array; `.into()` makes it a `Vec<Step>`).
#[macro_export]
macro_rules! path {
    ($($step:expr),* $(,)?) => { [$($crate::patch::Step::from($step)),*] };
}

/// Sets `value` at `path`, creating missing (or null) parent objects. An index
/// must address an existing array element. Returns false when the path runs
/// through a value that is neither an object nor a fitting array.
pub fn set(doc: &mut Value, path: &[Step], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *doc = value;
        return true;
    };
    let mut node = doc;
    for step in parents {
        node = match step {
            Step::Key(key) => {
                if node.is_null() {
                    *node = Value::Object(Map::new());
                }
                let Some(object) = node.as_object_mut() else {
                    return false;
                };
                let child = object.entry(key.as_ref()).or_insert(Value::Null);
                if child.is_null() {
                    *child = Value::Object(Map::new());
                }
                child
            }
            Step::Index(index) => match node.as_array_mut().and_then(|a| a.get_mut(*index)) {
                Some(child) => child,
                None => return false,
            },
        };
    }
    match last {
        Step::Key(key) => {
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            match node.as_object_mut() {
                Some(object) => {
                    object.insert(key.to_string(), value);
                    true
                }
                None => false,
            }
        }
        Step::Index(index) => match node.as_array_mut().and_then(|a| a.get_mut(*index)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
    }
}

/// Writes into a document in place and remembers where, so the JSON Patch
/// comes from the writes instead of from a second copy of the document and a
/// whole-document diff (the copy and its drop were a quarter of a review).
///
/// [`Writes::patch`] emits exactly what [`diff`] (and `json_patch::diff`)
/// would emit between the document before the first write and after the
/// last: the same operations in the same order.
#[derive(Debug, Default)]
pub struct Writes {
    /// The places written, as a tree of path steps. Places are disjoint: a
    /// written node has no written node below it.
    root: Place,
}

#[derive(Debug, Default)]
struct Place {
    /// Set when this place was written: what was there before the first
    /// write (`None`: nothing was).
    written: Option<Option<Value>>,
    /// Sorted by step, for a binary search: a Pod's containers node has one
    /// child per container.
    children: Vec<(Step, Place)>,
}

impl Place {
    fn child(&self, step: &Step) -> Option<&Place> {
        self.children
            .binary_search_by(|(s, _)| s.cmp(step))
            .ok()
            .map(|index| &self.children[index].1)
    }

    fn child_mut(&mut self, step: &Step) -> &mut Place {
        let index = match self.children.binary_search_by(|(s, _)| s.cmp(step)) {
            Ok(index) => index,
            Err(index) => {
                self.children
                    .insert(index, (step.clone(), Place::default()));
                index
            }
        };
        &mut self.children[index].1
    }

    /// Whether `path` lies in a written place.
    fn covers(&self, path: &[Step]) -> bool {
        let mut place = self;
        for step in path {
            if place.written.is_some() {
                return true;
            }
            match place.child(step) {
                Some(child) => place = child,
                None => return false,
            }
        }
        place.written.is_some()
    }

    /// Puts back into `doc`, the value of this place, what was there before
    /// the writes below it (`relative`: the path from this place so far).
    fn restore_into(&self, doc: &mut Value, relative: &mut Vec<Step>) {
        for (step, child) in &self.children {
            relative.push(step.clone());
            match &child.written {
                Some(Some(before)) => {
                    set(doc, relative, before.clone());
                }
                Some(None) => remove(doc, relative),
                None => child.restore_into(doc, relative),
            }
            relative.pop();
        }
    }

    /// Emits the operations of this place and those below it, in document
    /// order (the order `json_patch::diff` walks).
    fn emit(&self, now: Option<&Value>, pointer: &mut PointerBuf, patch: &mut Patch) {
        let Some(now) = now else {
            return;
        };
        match &self.written {
            Some(None) => patch.0.push(PatchOperation::Add(AddOperation {
                path: pointer.clone(),
                value: now.clone(),
            })),
            Some(Some(before)) => diff_value(before, now, pointer, patch),
            None => {
                let mut order: Vec<(usize, &Step, &Place)> = self
                    .children
                    .iter()
                    .map(|(step, child)| (position_in(now, step), step, child))
                    .collect();
                order.sort_by_key(|(position, _, _)| *position);
                for (_, step, child) in order {
                    let below = match step {
                        Step::Key(key) => {
                            pointer.push_back(key.as_ref());
                            now.get(key.as_ref())
                        }
                        Step::Index(index) => {
                            pointer.push_back(*index);
                            now.get(*index)
                        }
                    };
                    child.emit(below, pointer, patch);
                    pointer.pop_back();
                }
            }
        }
    }
}

impl Writes {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`set`], remembering what it changes. Returns false, as `set` does,
    /// when the path runs through a value that is neither an object nor a
    /// fitting array.
    pub fn set(&mut self, doc: &mut Value, path: &[Step], value: Value) -> bool {
        if !self.root.covers(path) {
            match first_change(doc, path, &value) {
                Change::Unwritable => return false,
                Change::Unchanged => return true,
                Change::At { depth, before } => self.remember(&path[..depth], before),
            }
        }
        set(doc, path, value)
    }

    fn remember(&mut self, path: &[Step], mut before: Option<Value>) {
        let place = path
            .iter()
            .fold(&mut self.root, |place, step| place.child_mut(step));
        // Places written earlier inside this one: what was there before them
        // goes back into `before`, which was read after them.
        if let Some(before) = before.as_mut() {
            place.restore_into(before, &mut Vec::new());
        }
        place.children.clear();
        place.written = Some(before);
    }

    /// The RFC 6902 patch from the document before the first write to `doc`.
    pub fn patch(&self, doc: &Value) -> Patch {
        let mut patch = Patch::default();
        self.root
            .emit(Some(doc), &mut PointerBuf::new(), &mut patch);
        patch
    }
}

/// Where `step` sits among the children of `node` in document order: the
/// member's place among its object's keys, or the array index.
fn position_in(node: &Value, step: &Step) -> usize {
    match step {
        Step::Key(key) => node
            .as_object()
            .and_then(|object| object.keys().position(|k| k == key))
            .unwrap_or(usize::MAX),
        Step::Index(index) => *index,
    }
}

enum Change {
    /// `set` would fail.
    Unwritable,
    /// The value is already there.
    Unchanged,
    /// The first `depth` steps of the path lead to the outermost place that
    /// changes: a missing key (`before` None), a null parent, or the leaf.
    At { depth: usize, before: Option<Value> },
}

/// Where `set(doc, path, value)` changes the document first.
fn first_change(doc: &Value, path: &[Step], value: &Value) -> Change {
    let mut node = doc;
    for (depth, step) in path.iter().enumerate() {
        let child = match step {
            Step::Key(key) => match node {
                Value::Object(object) => object.get(key.as_ref()),
                // `set` turns a null document into an object.
                Value::Null => {
                    return Change::At {
                        depth,
                        before: Some(Value::Null),
                    }
                }
                _ => return Change::Unwritable,
            },
            Step::Index(index) => match node.as_array().and_then(|a| a.get(*index)) {
                Some(child) => Some(child),
                None => return Change::Unwritable,
            },
        };
        let leaf = depth + 1 == path.len();
        match child {
            None => {
                return Change::At {
                    depth: depth + 1,
                    before: None,
                }
            }
            Some(child) if leaf && child == value => return Change::Unchanged,
            Some(child) if leaf || child.is_null() => {
                return Change::At {
                    depth: depth + 1,
                    before: Some(child.clone()),
                }
            }
            Some(child) => node = child,
        }
    }
    // An empty path replaces the whole document.
    if doc == value {
        Change::Unchanged
    } else {
        Change::At {
            depth: 0,
            before: Some(doc.clone()),
        }
    }
}

/// Removes the key at `path` (object members only).
fn remove(doc: &mut Value, path: &[Step]) {
    let Some((Step::Key(last), parents)) = path.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(doc, |node, step| match step {
        Step::Key(key) => node.get_mut(key.as_ref()),
        Step::Index(index) => node.get_mut(*index),
    });
    if let Some(Value::Object(object)) = parent {
        object.remove(last.as_ref());
    }
}

/// Reads the value at `path`, if present.
pub fn get<'a>(doc: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, step| match step {
        Step::Key(key) => node.get(key.as_ref()),
        Step::Index(index) => node.get(*index),
    })
}

/// The RFC 6902 patch that turns `received` into `admitted`. Paths are RFC 6901
/// pointers with `~` and `/` escaped (annotation keys contain `/`).
///
/// The same operations, in the same order, as `json_patch::diff`, but
/// subtrees still identical are skipped without building their paths or
/// looking their keys up. [`Writes`] uses it for a place it replaced; the
/// engine no longer diffs whole documents.
pub fn diff(received: &Value, admitted: &Value) -> json_patch::Patch {
    let mut patch = json_patch::Patch::default();
    diff_value(received, admitted, &mut PointerBuf::new(), &mut patch);
    patch
}

/// Equal, and objects with their keys in the same order: cheap, and `false`
/// only means "look closer".
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .zip(r)
                    .all(|((lk, lv), (rk, rv))| lk == rk && same(lv, rv))
        }
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(lv, rv)| same(lv, rv))
        }
        _ => left == right,
    }
}

fn diff_value(left: &Value, right: &Value, pointer: &mut PointerBuf, patch: &mut Patch) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => diff_object(l, r, pointer, patch),
        (Value::Array(l), Value::Array(r)) => diff_array(l, r, pointer, patch),
        _ if left == right => {}
        _ => patch.0.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer.clone(),
            value: right.clone(),
        })),
    }
}

fn diff_object(
    left: &Map<String, Value>,
    right: &Map<String, Value>,
    pointer: &mut PointerBuf,
    patch: &mut Patch,
) {
    let mut in_order = left.iter();
    let mut found = 0;
    for (key, right_value) in right {
        let left_value = match in_order.next() {
            Some((left_key, value)) if left_key == key => Some(value),
            _ => left.get(key),
        };
        match left_value {
            Some(left_value) => {
                found += 1;
                if !same(left_value, right_value) {
                    pointer.push_back(key);
                    diff_value(left_value, right_value, pointer, patch);
                    pointer.pop_back();
                }
            }
            None => {
                pointer.push_back(key);
                patch.0.push(PatchOperation::Add(AddOperation {
                    path: pointer.clone(),
                    value: right_value.clone(),
                }));
                pointer.pop_back();
            }
        }
    }
    if found == left.len() {
        return;
    }
    for key in left.keys().filter(|key| !right.contains_key(*key)) {
        pointer.push_back(key);
        patch.0.push(PatchOperation::Remove(RemoveOperation {
            path: pointer.clone(),
        }));
        pointer.pop_back();
    }
}

fn diff_array(left: &[Value], right: &[Value], pointer: &mut PointerBuf, patch: &mut Patch) {
    let mut shift = 0usize;
    for index in 0..left.len().max(right.len()) {
        match (left.get(index), right.get(index)) {
            (Some(l), Some(r)) => {
                if !same(l, r) {
                    pointer.push_back(index - shift);
                    diff_value(l, r, pointer, patch);
                    pointer.pop_back();
                }
            }
            (Some(_), None) => {
                pointer.push_back(index - shift);
                patch.0.push(PatchOperation::Remove(RemoveOperation {
                    path: pointer.clone(),
                }));
                pointer.pop_back();
                shift += 1;
            }
            (None, Some(r)) => {
                pointer.push_back(index - shift);
                patch.0.push(PatchOperation::Add(AddOperation {
                    path: pointer.clone(),
                    value: r.clone(),
                }));
                pointer.pop_back();
            }
            (None, None) => unreachable!("index below the longer length"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_creates_missing_parents_and_diff_adds_them_whole() {
        let received =
            json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c"}]}});
        let mut admitted = received.clone();
        assert!(set(
            &mut admitted,
            &path!["spec", "containers", 0, "lifecycle", "preStop"],
            json!({"sleep": {"seconds": 10}})
        ));
        assert!(set(
            &mut admitted,
            &path!["metadata", "annotations", "rollguard.io/mutated"],
            json!("prestop-sleep")
        ));
        let patch = serde_json::to_value(diff(&received, &admitted)).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {"rollguard.io/mutated": "prestop-sleep"}},
                {"op": "add", "path": "/spec/containers/0/lifecycle", "value": {"preStop": {"sleep": {"seconds": 10}}}},
            ])
        );
    }

    #[test]
    fn slash_and_tilde_in_keys_are_escaped() {
        let received = json!({"metadata": {"annotations": {"a": "b"}}});
        let mut admitted = received.clone();
        set(
            &mut admitted,
            &path!["metadata", "annotations", "rollguard.io/x~y"],
            json!("v"),
        );
        let patch = serde_json::to_value(diff(&received, &admitted)).unwrap();
        assert_eq!(patch[0]["path"], "/metadata/annotations/rollguard.io~1x~0y");
        let mut applied = received.clone();
        json_patch::patch(&mut applied, &diff(&received, &admitted)).unwrap();
        assert_eq!(applied, admitted);
    }

    #[test]
    fn set_refuses_paths_through_scalars_or_missing_elements() {
        let mut doc = json!({"spec": "text", "list": []});
        assert!(!set(&mut doc, &path!["spec", "x"], json!(1)));
        assert!(!set(&mut doc, &path!["list", 0, "x"], json!(1)));
        assert!(!set(&mut doc, &path!["list", 0], json!(1)));
        assert_eq!(doc, json!({"spec": "text", "list": []}));
    }

    #[test]
    fn get_follows_keys_and_indexes() {
        let doc = json!({"a": [{"b": 1}]});
        assert_eq!(get(&doc, &path!["a", 0, "b"]), Some(&json!(1)));
        assert_eq!(get(&doc, &path!["a", 1]), None);
    }
}
