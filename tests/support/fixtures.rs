//! The files the tests read, resolved from the package root (never from the
//! current directory): captured AdmissionReviews and the `examples/`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The package root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (relative to the root) with extension `ext`, by name.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = root().join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths
}

/// The real AdmissionReviews under `tests/fixtures/admission/`, by name.
pub fn admission_review_paths() -> Vec<PathBuf> {
    files("tests/fixtures/admission", "json")
}

/// Every captured review with its file stem, by name.
pub fn admission_reviews() -> Vec<(String, Value)> {
    admission_review_paths()
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let review = serde_json::from_slice(&std::fs::read(&path).expect("fixture"))
                .expect("fixture JSON");
            (name, review)
        })
        .collect()
}

/// One captured review, by file stem (`deployment-create`).
pub fn admission_review(name: &str) -> Value {
    let path = root()
        .join("tests/fixtures/admission")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

/// The `examples/*.yaml` manifests, by name.
pub fn example_paths() -> Vec<PathBuf> {
    files("examples", "yaml")
}

/// One `examples/` manifest, parsed.
pub fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples").join(name)).expect("example");
    serde_saphyr::from_str(&text).expect("example YAML")
}
