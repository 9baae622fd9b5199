//! The engine's patch is built from its typed view of the object
//! (`patch::build`): for any document and any writes, applying the patch to
//! the document gives what writing each value in place (creating missing
//! parents) gives, and on every captured review the patch changes the object
//! only where the engine writes.

mod support;

use proptest::prelude::*;
use serde_json::Value;

use rollguard::admission::PolicyConfig;
use rollguard::patch::{self, Step, Write};
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

/// A path of the kind the engine writes: keys (some new, some with `~` and
/// `/`) and array indexes (some past the end).
fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        "[a-e~/]{1,2}".prop_map(Step::from),
        (0usize..3).prop_map(Step::Index),
    ];
    prop::collection::vec(step, 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn the_patch_of_writes_does_what_writing_in_place_does(
        doc in document().prop_filter("an object", Value::is_object),
        writes in prop::collection::vec((steps(), leaf()), 1..5),
    ) {
        let writes: Vec<Write> = writes
            .into_iter()
            .map(|(path, value)| Write {
                path: path.into(),
                value: std::borrow::Cow::Owned(value),
            })
            .collect();
        let mut expected = doc.clone();
        let writable = writes
            .iter()
            .all(|w| support::json::set(&mut expected, &w.path, w.value.clone().into_owned()));
        match patch::build(&doc, &writes) {
            Ok(patch) => {
                let mut patched = doc.clone();
                json_patch::patch(&mut patched, &patch).expect("the patch applies");
                if writable {
                    prop_assert_eq!(patched, expected);
                }
            }
            // Refused only where writing in place fails too.
            Err(_) => prop_assert!(!writable),
        }
    }
}

/// The pointer of every place the engine writes, and of its parents.
fn written_places(verdict: &policy::Verdict, kind: WorkloadKind) -> Vec<String> {
    let mut places: Vec<String> = verdict
        .mutations
        .iter()
        .map(|m| patch::pointer(&m.path).to_string())
        .collect();
    places.push("/metadata/annotations".to_string());
    if kind != WorkloadKind::Pod {
        places.push("/spec/template/metadata/annotations".to_string());
    }
    places
}

#[test]
fn every_captured_review_is_changed_only_where_the_engine_writes() {
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
        let places = written_places(&verdict, kind);
        for change in json_patch::diff(object, &verdict.admitted).0 {
            let changed = change.path().to_string();
            assert!(
                places
                    .iter()
                    .any(|p| changed.starts_with(p.as_str()) || p.starts_with(&changed)),
                "{}: {changed} changed, not a place the engine writes ({places:?})",
                path.display()
            );
        }
        checked += 1;
        patched += usize::from(!verdict.patch.0.is_empty());
    }
    assert!(checked > 0, "no review under {}", dir.display());
    assert!(
        patched > 0,
        "no captured review was patched: nothing compared"
    );
}
