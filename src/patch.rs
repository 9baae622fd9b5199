//! Paths into an object and the JSON Patch of the engine's writes
//! ([`build`]). The patch names only the places written, so every field the
//! typed view does not know is left as it was.

use std::borrow::Cow;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation};
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

/// One value the engine writes into an object: its own, or lent by the
/// mutation it comes from (a Pod with a thousand containers has thousands).
#[derive(Debug, Clone, PartialEq)]
pub struct Write<'a> {
    pub path: Cow<'a, [Step]>,
    pub value: Cow<'a, Value>,
}

/// Why a write cannot become a patch operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {pointer}: a parent is not an object, or the array has no such element")]
pub struct Unwritable {
    pub pointer: String,
}

/// The RFC 6902 patch of `writes` against `view`, the object as the engine's
/// typed view read it ([`crate::workload::ObjectView::to_json`]). The view
/// says which parents of a write exist: the patch adds the first missing one
/// whole (`add /spec/strategy {"rollingUpdate": {...}}`), replaces a value
/// that is there, and leaves out a write of the value already there. Writes
/// under a parent an earlier write adds go into that operation, and a later
/// write of the same place wins. Keys are RFC 6901 escaped (`~1` for `/`).
///
/// Every field the view does not name is left as it was by construction:
/// operations only name places below fields of the view.
pub fn build(view: &Value, writes: &[Write<'_>]) -> Result<Patch, Unwritable> {
    Ok(to_patch(plan(view, writes)?))
}

/// [`build`], and the patch applied to `view` (what the engine judges as
/// admitted), each operation applied by its steps rather than by parsing
/// its pointer back.
pub fn build_and_apply(view: &mut Value, writes: &[Write<'_>]) -> Result<Patch, Unwritable> {
    let operations = plan(view, writes)?;
    for operation in &operations {
        if !apply(view, &operation.path, operation.value.clone()) {
            return Err(unwritable(&operation.path));
        }
    }
    Ok(to_patch(operations))
}

/// Puts `value` at `path`, whose parent exists (an `add` or `replace` of
/// the patch).
fn apply(doc: &mut Value, path: &[Step], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *doc = value;
        return true;
    };
    let parent = parents.iter().try_fold(doc, |node, step| match step {
        Step::Key(key) => node.get_mut(key.as_ref()),
        Step::Index(index) => node.get_mut(*index),
    });
    match (parent, last) {
        (Some(Value::Object(object)), Step::Key(key)) => {
            object.insert(key.to_string(), value);
            true
        }
        (Some(Value::Array(items)), Step::Index(index)) => match items.get_mut(*index) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

fn to_patch(operations: Vec<Operation>) -> Patch {
    Patch(
        operations
            .into_iter()
            .map(|op| {
                let path = pointer(&op.path);
                let value = op.value;
                if op.add {
                    PatchOperation::Add(AddOperation { path, value })
                } else {
                    PatchOperation::Replace(ReplaceOperation { path, value })
                }
            })
            .collect(),
    )
}

/// The operations of [`build`], in order.
fn plan(view: &Value, writes: &[Write<'_>]) -> Result<Vec<Operation>, Unwritable> {
    // Operations in write order; `None` where a later write replaced one.
    let mut operations: Vec<Option<Operation>> = Vec::new();
    // Where each operation writes, as a tree of steps: a write finds a parent
    // operation, or operations below it, by walking its own path (a Pod with
    // a thousand containers has thousands of writes).
    let mut places = Place::default();
    for write in writes {
        // Below a parent an earlier operation writes, or at its place.
        if let Some(index) = places.covering(&write.path) {
            let operation = operations[index].as_mut().expect("a live operation");
            let below = &write.path[operation.path.len()..];
            if !set_within(
                &mut operation.value,
                below,
                write.value.clone().into_owned(),
            ) {
                return Err(unwritable(&write.path));
            }
            continue;
        }
        // A write of a place that holds earlier writes replaces them.
        places.at(&write.path).clear(&mut operations);
        let (present, here) = present_prefix(view, &write.path)?;
        let operation = if present == write.path.len() {
            if here == Some(write.value.as_ref()) {
                continue;
            }
            Operation {
                path: write.path.to_vec(),
                value: write.value.clone().into_owned(),
                add: false,
            }
        } else {
            // The first missing (or null) place gets the rest of the path
            // whole: added as an object member, replaced as a null element.
            let mut value = Value::Null;
            set_within(
                &mut value,
                &write.path[present + 1..],
                write.value.clone().into_owned(),
            );
            Operation {
                path: write.path[..=present].to_vec(),
                value,
                add: matches!(write.path[present], Step::Key(_)),
            }
        };
        places.at(&operation.path).operation = Some(operations.len());
        operations.push(Some(operation));
    }
    Ok(operations.into_iter().flatten().collect())
}

/// A node of the tree of places operations write.
#[derive(Default)]
struct Place {
    /// The operation that writes exactly here.
    operation: Option<usize>,
    /// Sorted by step, for a binary search.
    children: Vec<(Step, Place)>,
}

impl Place {
    /// The node at `path`, made where missing.
    fn at(&mut self, path: &[Step]) -> &mut Place {
        path.iter().fold(self, |place, step| {
            let index = match place.children.binary_search_by(|(s, _)| s.cmp(step)) {
                Ok(index) => index,
                Err(index) => {
                    place
                        .children
                        .insert(index, (step.clone(), Place::default()));
                    index
                }
            };
            &mut place.children[index].1
        })
    }

    /// The operation a write of `path` goes into: one that writes a parent
    /// of `path` (its value is what the parent holds once the patch has run,
    /// so a later write below goes into it), or one that writes `path` itself.
    fn covering(&self, path: &[Step]) -> Option<usize> {
        let mut place = self;
        for step in path {
            if place.operation.is_some() {
                return place.operation;
            }
            let index = place.children.binary_search_by(|(s, _)| s.cmp(step)).ok()?;
            place = &place.children[index].1;
        }
        place.operation
    }

    /// Drops the operations at and below this place.
    fn clear(&mut self, operations: &mut [Option<Operation>]) {
        if let Some(index) = self.operation.take() {
            operations[index] = None;
        }
        for (_, child) in &mut self.children {
            child.clear(operations);
        }
        self.children.clear();
    }
}

/// One operation of the patch being built.
struct Operation {
    path: Vec<Step>,
    value: Value,
    /// `add` (a missing or null object member), else `replace`.
    add: bool,
}

/// How many leading steps of `path` name values that exist in `doc` (a null
/// parent counts as missing), and the value at the whole path when it exists. A missing array
/// element cannot be written.
fn present_prefix<'a>(
    doc: &'a Value,
    path: &[Step],
) -> Result<(usize, Option<&'a Value>), Unwritable> {
    let mut node = doc;
    for (depth, step) in path.iter().enumerate() {
        let child = match (step, node) {
            (Step::Key(key), Value::Object(object)) => object.get(key.as_ref()),
            (Step::Index(index), Value::Array(items)) => match items.get(*index) {
                Some(item) => Some(item),
                None => return Err(unwritable(path)),
            },
            _ => return Err(unwritable(path)),
        };
        match child {
            None => return Ok((depth, None)),
            // A null parent is written over; a null leaf is replaced.
            Some(Value::Null) if depth + 1 < path.len() => return Ok((depth, None)),
            Some(child) => node = child,
        }
    }
    Ok((path.len(), Some(node)))
}

/// Sets `value` at `path` inside a value the patch adds, creating the
/// objects on the way. False when the path runs through a value that is
/// neither an object nor null, or through an array.
fn set_within(node: &mut Value, path: &[Step], value: Value) -> bool {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return true;
    };
    let Step::Key(key) = first else {
        return false;
    };
    if node.is_null() {
        *node = Value::Object(Map::new());
    }
    match node {
        Value::Object(object) => {
            let child = object.entry(key.as_ref()).or_insert(Value::Null);
            set_within(child, rest, value)
        }
        _ => false,
    }
}

/// The RFC 6901 pointer of a path (`~` and `/` in keys escaped).
pub fn pointer(path: &[Step]) -> PointerBuf {
    let mut pointer = PointerBuf::new();
    for step in path {
        match step {
            Step::Key(key) => pointer.push_back(key.as_ref()),
            Step::Index(index) => pointer.push_back(*index),
        }
    }
    pointer
}

fn unwritable(path: &[Step]) -> Unwritable {
    Unwritable {
        pointer: pointer(path).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &[Step], value: Value) -> Write<'static> {
        Write {
            path: Cow::Owned(path.to_vec()),
            value: Cow::Owned(value),
        }
    }

    fn built(view: &Value, writes: &[Write]) -> Value {
        serde_json::to_value(build(view, writes).expect("writable")).unwrap()
    }

    #[test]
    fn missing_parents_are_added_whole_and_later_writes_join_them() {
        let view = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let patch = built(
            &view,
            &[
                write(
                    &path!["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!(0),
                ),
                write(
                    &path!["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!(1),
                ),
                write(
                    &path!["metadata", "annotations", "rollguard.io/mutated"],
                    json!("x"),
                ),
                write(&path!["spec", "replicas"], json!(3)),
                write(&path!["spec", "replicas"], json!(4)),
            ],
        );
        assert_eq!(
            patch,
            json!([
                {"op": "add", "path": "/spec/strategy", "value": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}},
                {"op": "add", "path": "/metadata/annotations", "value": {"rollguard.io/mutated": "x"}},
                {"op": "replace", "path": "/spec/replicas", "value": 4},
            ])
        );
    }

    #[test]
    fn slash_and_tilde_in_keys_are_escaped_and_the_patch_applies() {
        let view = json!({"metadata": {"annotations": {"a": "b"}}});
        let writes = [write(
            &path!["metadata", "annotations", "rollguard.io/x~y"],
            json!("v"),
        )];
        let patch = build(&view, &writes).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap()[0]["path"],
            "/metadata/annotations/rollguard.io~1x~0y"
        );
        let mut applied = view.clone();
        json_patch::patch(&mut applied, &patch).unwrap();
        assert_eq!(applied["metadata"]["annotations"]["rollguard.io/x~y"], "v");
    }

    #[test]
    fn a_null_parent_is_added_and_an_unchanged_value_is_left_out() {
        let view = json!({"spec": {"lifecycle": null, "grace": 30}});
        let patch = built(
            &view,
            &[
                write(&path!["spec", "lifecycle", "preStop"], json!({"sleep": 1})),
                write(&path!["spec", "grace"], json!(30)),
            ],
        );
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/spec/lifecycle", "value": {"preStop": {"sleep": 1}}}])
        );
    }

    #[test]
    fn a_write_below_a_replaced_value_goes_into_the_replacement() {
        // The view's /spec/lifecycle/preStop is gone once /spec/lifecycle is
        // replaced: a separate replace of it would not apply.
        let view = json!({"spec": {"lifecycle": {"preStop": {"exec": {}}}, "grace": {"a": 1}}});
        let writes = [
            write(&path!["spec", "lifecycle"], json!({"postStart": {}})),
            write(&path!["spec", "lifecycle", "preStop"], json!({"sleep": 1})),
            write(&path!["spec", "grace"], Value::Null),
            write(&path!["spec", "grace", "a"], json!(2)),
        ];
        let patch = build(&view, &writes).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "replace", "path": "/spec/lifecycle", "value": {"postStart": {}, "preStop": {"sleep": 1}}},
                {"op": "replace", "path": "/spec/grace", "value": {"a": 2}},
            ])
        );
        let mut applied = view.clone();
        json_patch::patch(&mut applied, &patch).unwrap();
        assert_eq!(applied["spec"]["grace"], json!({"a": 2}));
    }

    #[test]
    fn paths_through_scalars_or_missing_elements_are_refused() {
        let view = json!({"spec": "text", "list": []});
        assert!(build(&view, &[write(&path!["spec", "x"], json!(1))]).is_err());
        assert!(build(&view, &[write(&path!["list", 0, "x"], json!(1))]).is_err());
    }
}
