//! Reading manifests for `rollguard check`: files, directories (recursively,
//! `*.yaml`, `*.yml`, `*.json`) or stdin; multi-document YAML split with the
//! line each document starts on, so every report can point at its source.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CheckError;

/// Where manifests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(path) => path.display().to_string(),
        }
    }
}

/// Expands the command-line paths: `-` is stdin, directories are walked in
/// name order, plain files are taken whatever their extension.
pub fn expand(paths: &[String]) -> Result<Vec<Input>, CheckError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(path);
        let metadata = std::fs::metadata(path)
            .map_err(|err| CheckError::Usage(format!("cannot read {}: {err}", path.display())))?;
        if metadata.is_dir() {
            walk(path, &mut inputs)?;
        } else {
            inputs.push(Input::File(path.to_path_buf()));
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, inputs: &mut Vec<Input>) -> Result<(), CheckError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| {
            CheckError::Usage(format!("cannot read directory {}: {err}", dir.display()))
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, inputs)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            inputs.push(Input::File(path));
        }
    }
    Ok(())
}

/// One YAML document of a stream, with the 1-based line its content starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The line of its first content (past leading comments): where reports point.
    pub line: usize,
    /// The line `text` starts on: where the parser's own lines count from.
    pub start: usize,
    pub text: String,
}

/// Reads a YAML stream one document at a time, split on `---` markers (and
/// `...` ends), so memory stays flat however long the stream is.
pub struct Documents<R> {
    reader: R,
    line_number: usize,
    pending: Option<Document>,
    done: bool,
}

impl<R: BufRead> Documents<R> {
    pub fn new(reader: R) -> Self {
        Documents {
            reader,
            line_number: 0,
            pending: Some(Document {
                line: 1,
                start: 1,
                text: String::new(),
            }),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for Documents<R> {
    /// A document, or a read error with the line it happened on.
    type Item = Result<Document, ParseFailure>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                let doc = self.pending.take()?;
                return (!is_blank(&doc.text)).then(|| Ok(finish(doc)));
            }
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_number += 1;
                    if self.line_number == 1 {
                        // A byte-order mark belongs to the stream, not its first line.
                        if let Some(rest) = line.strip_prefix('\u{feff}') {
                            line = rest.to_string();
                        }
                    }
                    let trimmed = line.trim_end();
                    if !is_marker(trimmed) {
                        if let Some(doc) = self.pending.as_mut() {
                            doc.text.push_str(&line);
                        }
                        continue;
                    }
                    // `--- {...}` carries content on the marker line itself.
                    let inline = trimmed
                        .strip_prefix("---")
                        .map(str::trim)
                        .filter(|rest| !rest.is_empty() && !rest.starts_with('#'));
                    let first = if inline.is_some() {
                        self.line_number
                    } else {
                        self.line_number + 1
                    };
                    let next = Document {
                        line: first,
                        start: first,
                        text: inline.map(|rest| format!("{rest}\n")).unwrap_or_default(),
                    };
                    if let Some(doc) = self.pending.replace(next) {
                        if !is_blank(&doc.text) {
                            return Some(Ok(finish(doc)));
                        }
                    }
                }
                Err(err) => {
                    self.done = true;
                    self.pending = None;
                    return Some(Err(ParseFailure {
                        line: self.line_number + 1,
                        column: None,
                        message: format!("cannot read: {err}"),
                    }));
                }
            }
        }
    }
}

/// A line that starts or ends a document. As kubectl's YAMLReader
/// (k8s.io/apimachinery/pkg/util/yaml) splits: a line starting with `---`
/// whose rest, trimmed, is empty or a comment (`---`, `---\t# c`). Unlike
/// kubectl, `--- {a: 1}` (content after a space or tab, which kubectl refuses
/// as "invalid Yaml document separator") starts a document holding that
/// content, and `...` ends one, as YAML has them; `---x` is content.
fn is_marker(line: &str) -> bool {
    if line == "..." {
        return true;
    }
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Points the document at its first line of content, past leading comments.
fn finish(mut doc: Document) -> Document {
    doc.line += doc
        .text
        .lines()
        .take_while(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        })
        .count();
    doc
}

/// Splits a whole YAML text into documents.
pub fn documents(text: &str) -> Vec<Document> {
    Documents::new(text.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Only whitespace and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%')
    })
}

/// A document that could not be parsed, at the file's own position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub line: usize,
    /// 1-based, when the parser knows it (the report prints `file:line:column`).
    pub column: Option<usize>,
    pub message: String,
}

/// A document that was read, and what the reader had to decide on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub value: Value,
    /// Each repeated key, read as kubectl reads it: `(line, message)`.
    pub warnings: Vec<(usize, String)>,
}

/// The options that read YAML as kubectl does (sigs.k8s.io/yaml, go-yaml
/// v2, YAML 1.1): `0400` is octal 256 and `yes`/`on` are booleans (saphyr's
/// default for untyped values).
fn kubectl_options(duplicate_keys: serde_saphyr::DuplicateKeyPolicy) -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        duplicate_keys: duplicate_keys,
    }
}

/// Most repeated keys named one by one in a document.
const MAX_DUPLICATE_WARNINGS: usize = 50;

/// Parses one document as YAML (JSON is YAML too), as kubectl reads it. A
/// duplicate key takes its last value, as kubectl's decoder does, with a
/// warning naming the key and its line, for every duplicate.
pub fn parse(doc: &Document) -> Result<Parsed, ParseFailure> {
    use serde_saphyr::DuplicateKeyPolicy;
    let warnings = duplicate_keys(doc)?;
    let value = serde_saphyr::from_str_with_options::<Value>(
        &doc.text,
        kubectl_options(if warnings.is_empty() {
            DuplicateKeyPolicy::Error
        } else {
            DuplicateKeyPolicy::LastWins
        }),
    )
    .map_err(|err| failure(doc, &err))?;
    Ok(Parsed { value, warnings })
}

/// The warning for each repeated key of the document, in order. The parser
/// stops at the first: each one found is renamed in a copy of the text (a
/// prefix no manifest uses) and the copy read again, so the next is found.
/// An error other than a duplicate is the document's error, unless a
/// duplicate came first (the last-wins read then reports it).
fn duplicate_keys(doc: &Document) -> Result<Vec<(usize, String)>, ParseFailure> {
    use serde_saphyr::DuplicateKeyPolicy;
    let mut text = std::borrow::Cow::Borrowed(doc.text.as_str());
    let mut warnings = Vec::new();
    while warnings.len() < MAX_DUPLICATE_WARNINGS {
        let err = match serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(
            &text,
            kubectl_options(DuplicateKeyPolicy::Error),
        ) {
            Ok(_) => break,
            Err(err) => err,
        };
        let serde_saphyr::Error::DuplicateMappingKey { key, location } = err.without_snippet()
        else {
            if warnings.is_empty() {
                return Err(failure(doc, &err));
            }
            break;
        };
        let line = doc.start + (location.line() as usize).saturating_sub(1);
        let key = key.as_deref().unwrap_or("(complex key)");
        warnings.push((
            line,
            format!(
                "duplicate key {key:?}: the last value is used, as kubectl does; remove the other"
            ),
        ));
        let Some(at) = byte_offset(&text, location.line(), location.column()) else {
            break;
        };
        let mut renamed = text.into_owned();
        renamed.insert_str(at, &format!("rollguard-duplicate-{}-", warnings.len()));
        text = std::borrow::Cow::Owned(renamed);
    }
    Ok(warnings)
}

/// The byte offset of a 1-based line and character column in `text`.
fn byte_offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take((line as usize).checked_sub(1)?)
        .map(str::len)
        .sum();
    let rest = &text[line_start..];
    let column = (column as usize).checked_sub(1)?;
    rest.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(rest.len()))
        .nth(column)
        .map(|i| line_start + i)
}

/// The parser's error at the file's own line and column: its lines count
/// from the document's first line, comments included, so its own "at line
/// N, column M" is dropped from the message (the report prints the
/// file's line and column).
fn failure(doc: &Document, err: &serde_saphyr::Error) -> ParseFailure {
    let location = err.location().filter(|l| l.line() > 0);
    let line = location
        .map(|l| doc.start + (l.line() as usize).saturating_sub(1))
        .unwrap_or(doc.line);
    let column = location.map(|l| l.column() as usize).filter(|c| *c > 0);
    let message = err.without_snippet().to_string();
    let message = message
        .lines()
        .next()
        .unwrap_or("malformed YAML")
        .trim_start_matches("error: ");
    let message = match message.rfind(" at line ") {
        Some(at) if message[at..].contains(", column ") => &message[..at],
        _ => message,
    };
    ParseFailure {
        line,
        column,
        message: message.to_string(),
    }
}

/// The objects a document holds: itself, or the items of a `List`.
pub fn objects(document: Value) -> Vec<Value> {
    let is_list = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && document.get("items").is_some_and(Value::is_array);
    if is_list {
        match document {
            Value::Object(mut map) => match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    } else {
        vec![document]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_their_lines() {
        let text = "# header\na: 1\n---\nb: 2\n\n--- # comment\nc: 3\n---\n";
        let docs = documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            (docs[0].line, docs[0].text.as_str()),
            (2, "# header\na: 1\n")
        );
        assert_eq!((docs[1].line, docs[1].text.as_str()), (4, "b: 2\n\n"));
        assert_eq!((docs[2].line, docs[2].text.as_str()), (7, "c: 3\n"));
    }

    #[test]
    fn non_utf8_input_is_an_error_with_its_line() {
        let bytes: &[u8] = b"a: 1\n---\nb: \xff\n";
        let results: Vec<_> = Documents::new(bytes).collect();
        assert_eq!(results[0].as_ref().unwrap().text, "a: 1\n");
        assert_eq!(results[1].as_ref().unwrap_err().line, 3);
    }

    #[test]
    fn parse_errors_carry_the_absolute_line() {
        let text = "a: 1\n---\nkind: Deployment\nmetadata: [unclosed\n";
        let docs = documents(text);
        let err = parse(&docs[1]).unwrap_err();
        assert!(err.line >= 3, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn parse_error_lines_are_the_files_own_past_leading_comments() {
        // 17 lines: 14 of comments, the error on line 17.
        let mut text = "# comment\n".repeat(14);
        text.push_str("kind: ConfigMap\ndata:\n  a: [unclosed\n");
        let docs = documents(&text);
        let err = parse(&docs[0]).unwrap_err();
        assert!((16..=17).contains(&err.line), "{err:?}");
        let text = format!("a: 1\n---\n{}", text);
        let err = parse(&documents(&text)[1]).unwrap_err();
        assert!((18..=19).contains(&err.line), "{err:?}");
    }

    #[test]
    fn yaml_is_read_as_kubectl_reads_it() {
        let doc = &documents("mode: 0400\nhostNetwork: yes\nx: on\ns: '0400'\n")[0];
        let parsed = parse(doc).unwrap();
        assert_eq!(
            parsed.value,
            serde_json::json!({"mode": 256, "hostNetwork": true, "x": true, "s": "0400"})
        );
    }

    #[test]
    fn a_duplicate_key_takes_the_last_value_with_a_warning_naming_key_and_line() {
        let doc = &documents("# c\nkind: ConfigMap\ndata:\n  a: '1'\n  a: '2'\n")[0];
        let parsed = parse(doc).unwrap();
        assert_eq!(parsed.value["data"]["a"], "2");
        assert_eq!(parsed.warnings.len(), 1);
        let (line, message) = &parsed.warnings[0];
        assert_eq!(*line, 5);
        assert!(
            message.contains("\"a\"") && message.contains("last value"),
            "{message}"
        );
        assert!(!message.contains("DuplicateKeyPolicy"), "{message}");
    }

    #[test]
    fn markers_are_split_as_kubectl_splits_them() {
        // `---` then a tab, a tab and a comment, trailing spaces, CRLF.
        let text = "a: 1\n---\t\nb: 2\n---\t# c\nc: 3\n---  \r\nd: 4\n---x: 5\n";
        let docs = documents(text);
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["a: 1\n", "b: 2\n", "c: 3\n", "d: 4\n---x: 5\n"]);
        assert_eq!(docs[2].line, 5);
        // A byte-order mark before the first marker.
        let docs = documents("\u{feff}---\nkind: A\n");
        assert_eq!(
            (docs.len(), docs[0].line, docs[0].text.as_str()),
            (1, 2, "kind: A\n")
        );
    }

    #[test]
    fn parse_errors_give_the_files_line_and_column_not_the_parsers() {
        let text = "a: 1\n---\n# one\n# two\nkind: X\nmetadata: [unclosed\n";
        let err = parse(&documents(text)[1]).unwrap_err();
        assert_eq!(err.line, 6, "{err:?}");
        // `metadata: [unclosed`: the `[` is the 11th character.
        assert_eq!(err.column, Some(11), "{err:?}");
        assert!(!err.message.contains("line"), "{err:?}");
        assert!(!err.message.contains("column"), "{err:?}");
    }

    #[test]
    fn every_duplicate_key_is_warned_with_its_line() {
        let text = "kind: A\nkind: B\nspec:\n  x: 1\n  y: 2\n  x: 3\n  y: 4\n";
        let parsed = parse(&documents(text)[0]).unwrap();
        assert_eq!(
            parsed.value,
            serde_json::json!({"kind": "B", "spec": {"x": 3, "y": 4}})
        );
        let lines: Vec<usize> = parsed.warnings.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 6, 7], "{:?}", parsed.warnings);
        for ((_, message), key) in parsed.warnings.iter().zip(["kind", "x", "y"]) {
            assert!(message.contains(&format!("{key:?}")), "{message}");
        }
    }

    #[test]
    fn lists_expand_into_their_items() {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [{"kind": "A"}, {"kind": "B"}]});
        assert_eq!(objects(list).len(), 2);
        let single = serde_json::json!({"kind": "Deployment"});
        assert_eq!(objects(single).len(), 1);
    }
}
