//! `patch::diff` skips unchanged subtrees for speed (docs/performance.md); it
//! must still produce exactly the operations `json_patch::diff` does, in the
//! same order, for any pair of documents. `patch::Writes`, which the engine
//! uses to write in place, must emit that same patch from its writes alone.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use rollguard::admission::PolicyConfig;
use rollguard::patch;
use rollguard::policy::{self, EvalRequest, Mode, Stage};
use rollguard::workload::WorkloadKind;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        "[a-c~/]{0,3}".prop_map(Value::from),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-e~/]{1,2}", inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// One edit of the kinds a mutation or a client makes.
#[derive(Debug, Clone)]
enum Edit {
    Set(Vec<usize>, String, Value),
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
    Push(Vec<usize>, Value),
    Pop(Vec<usize>),
    Reorder(Vec<usize>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let route = || prop::collection::vec(0usize..6, 0..4);
    prop_oneof![
        (route(), "[a-f~/]{1,2}", document()).prop_map(|(r, k, v)| Edit::Set(r, k, v)),
        (route(), document()).prop_map(|(r, v)| Edit::Replace(r, v)),
        route().prop_map(Edit::Remove),
        (route(), leaf()).prop_map(|(r, v)| Edit::Push(r, v)),
        route().prop_map(Edit::Pop),
        route().prop_map(Edit::Reorder),
    ]
}

/// Follows `route` (child positions, modulo the number of children) as far
/// as it goes.
fn walk<'a>(mut node: &'a mut Value, route: &[usize]) -> &'a mut Value {
    for &step in route {
        let len = match &*node {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if len == 0 {
            break;
        }
        node = match node {
            Value::Object(map) => map.values_mut().nth(step % len).expect("in range"),
            Value::Array(items) => &mut items[step % len],
            _ => unreachable!("only containers have children"),
        };
    }
    node
}

/// A path of the kind the engine writes: keys (some new, some with `~` and
/// `/`) and array indexes (some past the end).
fn steps() -> impl Strategy<Value = Vec<patch::Step>> {
    let step = prop_oneof![
        "[a-e~/]{1,2}".prop_map(patch::Step::from),
        (0usize..3).prop_map(patch::Step::Index),
    ];
    prop::collection::vec(step, 0..5)
}

fn apply(doc: &mut Value, edit: &Edit) {
    match edit {
        Edit::Set(route, key, value) => {
            if let Value::Object(map) = walk(doc, route) {
                map.insert(key.clone(), value.clone());
            }
        }
        Edit::Replace(route, value) => *walk(doc, route) = value.clone(),
        Edit::Remove(route) => match walk(doc, route) {
            Value::Object(map) => {
                if let Some(key) = map.keys().next().cloned() {
                    map.remove(&key);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(0);
            }
            _ => {}
        },
        Edit::Push(route, value) => {
            if let Value::Array(items) = walk(doc, route) {
                items.push(value.clone());
            }
        }
        Edit::Pop(route) => {
            if let Value::Array(items) = walk(doc, route) {
                items.pop();
            }
        }
        Edit::Reorder(route) => {
            if let Value::Object(map) = walk(doc, route) {
                let reversed: Map<String, Value> = std::mem::take(map).into_iter().rev().collect();
                *map = reversed;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn diff_matches_json_patch_on_edited_copies(
        received in document(),
        edits in prop::collection::vec(edit(), 0..5),
    ) {
        let mut admitted = received.clone();
        for edit in &edits {
            apply(&mut admitted, edit);
        }
        let ours = patch::diff(&received, &admitted);
        prop_assert_eq!(&ours, &json_patch::diff(&received, &admitted));
        let mut patched = received.clone();
        json_patch::patch(&mut patched, &ours).expect("the patch applies");
        prop_assert_eq!(patched, admitted);
    }

    #[test]
    fn writes_in_place_give_the_patch_of_a_diff(
        received in document(),
        writes in prop::collection::vec((steps(), document()), 0..6),
    ) {
        let mut admitted = received.clone();
        let mut recorder = patch::Writes::new();
        for (path, value) in writes {
            let mut expected = admitted.clone();
            let written = patch::set(&mut expected, &path, value.clone());
            prop_assert_eq!(recorder.set(&mut admitted, &path, value), written);
            prop_assert_eq!(&admitted, &expected);
        }
        let ours = recorder.patch(&admitted);
        prop_assert_eq!(&ours, &json_patch::diff(&received, &admitted));
        let mut patched = received.clone();
        json_patch::patch(&mut patched, &ours).expect("the patch applies");
        prop_assert_eq!(patched, admitted);
    }

    #[test]
    fn diff_matches_json_patch_on_unrelated_documents(left in document(), right in document()) {
        prop_assert_eq!(patch::diff(&left, &right), json_patch::diff(&left, &right));
    }
}

#[test]
fn diff_matches_json_patch_on_every_captured_review() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
    let mut checked = 0;
    let mut patched = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let review: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        let object = &review["request"]["object"];
        let Some(kind) = WorkloadKind::from_object(object) else {
            continue;
        };
        let request = EvalRequest {
            kind,
            object,
            stage: Stage::Mutate,
            mode: Mode::Enforce,
        };
        let Ok(verdict) = policy::evaluate(&request, &PolicyConfig::default().settings) else {
            continue;
        };
        assert_eq!(
            verdict.patch,
            json_patch::diff(object, &verdict.admitted),
            "{}",
            path.display()
        );
        checked += 1;
        patched += usize::from(!verdict.patch.0.is_empty());
    }
    assert!(checked > 0, "no review under {}", dir.display());
    assert!(
        patched > 0,
        "no captured review was patched: nothing compared"
    );
}

#[test]
fn keys_in_another_order_are_not_a_change() {
    let received = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
    let admitted = json!({"b": {"d": "x", "c": [1, 2]}, "a": 1});
    assert!(patch::diff(&received, &admitted).0.is_empty());
}
