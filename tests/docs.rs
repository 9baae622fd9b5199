//! Documentation generated from the rule table must match the table. Run with
//! `ROLLGUARD_BLESS=1` to rewrite `docs/rules.md` after changing a rule.

use std::path::Path;

#[test]
fn docs_rules_md_is_generated_from_the_rule_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md");
    let expected = rollguard::catalog::rules_markdown();
    if std::env::var_os("ROLLGUARD_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/rules.md is out of date: regenerate it with `ROLLGUARD_BLESS=1 cargo test --test docs` \
         or `rollguard rules --markdown > docs/rules.md`"
    );
}

#[test]
fn readme_lists_every_rule_and_annotation() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for rule in rollguard::rules::Rule::ALL {
        assert!(
            readme.contains(&format!("`{}`", rule.name())),
            "README lacks rule {rule}"
        );
    }
    for (key, _, _) in rollguard::catalog::ANNOTATIONS {
        assert!(readme.contains(key), "README lacks annotation {key}");
    }
}
