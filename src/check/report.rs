//! The output formats of `rollguard check`: `text` for people, `yaml` for
//! pipelines (the manifests as rollguard would admit them), `diff`, and `json`
//! for machines. Each report is written as soon as its object is checked.

use std::io::Write;

use serde_json::{json, Value};

use super::{CheckError, ObjectReport, ParseFailure, Summary};
use crate::policy::EffectiveMode;
use crate::rules::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Yaml,
    Diff,
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// OpenReports `openreports.io/v1alpha1` Report objects, one per
    /// namespace (docs/policy-reports.md).
    Report,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Yaml,
        Format::Diff,
        Format::Json,
        Format::Sarif,
        Format::Report,
    ];

    /// The word of `--output`.
    pub fn label(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Yaml => "yaml",
            Format::Diff => "diff",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Report => "report",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&Format::ALL, Format::label, s).ok_or_else(|| {
            format!(
                "unknown output format {s:?}: accepted values are {}",
                crate::label::list(&Format::ALL, Format::label)
            )
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

pub struct Reporter {
    format: Format,
    color: bool,
    json_entries: usize,
    /// Report output: the results not yet written, per namespace (results
    /// only, not objects). Files keep them to the end, as a namespace's
    /// objects may be in any file; the cluster writes each namespace's
    /// Report as soon as its lists are done ([`Reporter::write_reports`]).
    reports: std::collections::BTreeMap<String, Vec<Value>>,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Reporter {
    pub fn new(format: Format, color: bool) -> Reporter {
        Reporter {
            format,
            color,
            json_entries: 0,
            reports: std::collections::BTreeMap::new(),
        }
    }

    /// Whether the caller must hand over admitted documents (yaml output).
    pub fn wants_admitted(&self) -> bool {
        self.format == Format::Yaml
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    pub fn begin(&mut self, out: &mut dyn Write) -> Result<(), CheckError> {
        match self.format {
            Format::Json => out.write_all(b"[")?,
            Format::Sarif => {
                let rules: Vec<Value> = crate::rules::Rule::ALL
                    .iter()
                    .map(|r| {
                        json!({"id": r.name(), "shortDescription": {"text": r.why()},
                               "help": {"text": format!("{} Example: {}", r.fix(), r.example())},
                               "helpUri": format!("docs/rules.md#{}", r.name())})
                    })
                    .collect();
                let head = json!({"name": "rollguard", "version": env!("CARGO_PKG_VERSION"), "rules": rules});
                write!(
                    out,
                    "{{\"version\":\"2.1.0\",\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"runs\":[{{\"tool\":{{\"driver\":{head}}},\"results\":["
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Input that could not be read.
    pub fn error(
        &mut self,
        out: &mut dyn Write,
        source: &str,
        line: usize,
        message: &str,
    ) -> Result<(), CheckError> {
        self.input_problem(out, "error", RED, source, (line, None), message)
    }

    /// A document that could not be parsed, at its line and column.
    pub fn parse_failure(
        &mut self,
        out: &mut dyn Write,
        source: &str,
        failure: &ParseFailure,
    ) -> Result<(), CheckError> {
        let at = (failure.line, failure.column);
        self.input_problem(out, "error", RED, source, at, &failure.message)
    }

    /// A problem in the input that did not stop it being read.
    pub fn warning(
        &mut self,
        out: &mut dyn Write,
        source: &str,
        line: usize,
        message: &str,
    ) -> Result<(), CheckError> {
        self.input_problem(out, "warning", YELLOW, source, (line, None), message)
    }

    /// `level` is `error` or `warning`: the word shown and the JSON/SARIF key.
    /// `at` is the line and, when known, the column.
    fn input_problem(
        &mut self,
        out: &mut dyn Write,
        level: &str,
        color: &str,
        source: &str,
        at: (usize, Option<usize>),
        message: &str,
    ) -> Result<(), CheckError> {
        let (line, column) = at;
        let position = match column {
            Some(column) if line > 0 => format!("{source}:{line}:{column}"),
            _ => position(source, line),
        };
        match self.format {
            Format::Text => writeln!(out, "{}: {position}: {message}", self.paint(color, level))?,
            Format::Sarif => {
                let mut result = sarif_result("invalid-input", level, message, source, line);
                if let Some(column) = column {
                    result["locations"][0]["physicalLocation"]["region"]["startColumn"] =
                        json!(column);
                }
                self.json_entry(out, &result)?
            }
            Format::Json => {
                let mut entry = json!({"file": source, "line": line, level: message});
                if let Some(column) = column {
                    entry["column"] = json!(column);
                }
                self.json_entry(out, &entry)?
            }
            // Keep the pipeline's stdout valid YAML / diff.
            Format::Yaml | Format::Diff | Format::Report => {
                eprintln!("{level}: {position}: {message}")
            }
        }
        Ok(())
    }

    pub fn object(
        &mut self,
        out: &mut dyn Write,
        report: &ObjectReport<'_>,
    ) -> Result<(), CheckError> {
        if let Some(error) = &report.error {
            return self.error(
                out,
                report.source,
                report.line,
                &format!("{}: {error}", report.identity()),
            );
        }
        match self.format {
            Format::Text => self.text(out, report),
            Format::Json => self.json_entry(out, &json_report(report)),
            Format::Sarif => {
                for result in sarif_results(report) {
                    self.json_entry(out, &result)?;
                }
                Ok(())
            }
            Format::Diff => diff(out, report),
            Format::Report => {
                let namespace = report
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string());
                self.reports
                    .entry(namespace)
                    .or_default()
                    .extend(report_results(report));
                Ok(())
            }
            Format::Yaml => Ok(()),
        }
    }

    fn text(&self, out: &mut dyn Write, report: &ObjectReport<'_>) -> Result<(), CheckError> {
        let Some(verdict) = &report.verdict else {
            return Ok(());
        };
        let head = format!(
            "{} ({})",
            report.identity(),
            position(report.source, report.line)
        );
        if verdict.mode == EffectiveMode::Off {
            writeln!(
                out,
                "{}: skipped (rollguard.io/mode: off)",
                self.paint(BOLD, &head)
            )?;
            return Ok(());
        }
        if verdict.mutations.is_empty() && verdict.violations.is_empty() {
            writeln!(out, "{}: ok", self.paint(BOLD, &head))?;
            return Ok(());
        }
        writeln!(out, "{}", self.paint(BOLD, &head))?;
        let audit = verdict.mode == EffectiveMode::Audit;
        for m in &verdict.mutations {
            let label = match (audit, m.action) {
                (true, _) => "would set",
                (false, Action::Warn) => "suggest",
                _ => "mutate",
            };
            writeln!(out, "  {} {}", self.paint(GREEN, label), m.describe())?;
        }
        for v in &verdict.violations {
            let (label, color) = match (audit, v.action) {
                (true, Action::Deny) => ("would deny", RED),
                (false, Action::Deny) => ("deny", RED),
                _ if v.waived => ("warn (waived)", YELLOW),
                _ => ("warn", YELLOW),
            };
            writeln!(out, "  {} {}", self.paint(color, label), v.message())?;
        }
        Ok(())
    }

    fn json_entry(&mut self, out: &mut dyn Write, entry: &Value) -> Result<(), CheckError> {
        let separator = if self.json_entries == 0 { "\n" } else { ",\n" };
        self.json_entries += 1;
        out.write_all(separator.as_bytes())?;
        serde_json::to_writer(&mut *out, entry).map_err(std::io::Error::from)?;
        Ok(())
    }

    /// An unchanged document, written back exactly as it was read.
    pub fn passthrough(&mut self, out: &mut dyn Write, text: &str) -> Result<(), CheckError> {
        if self.format == Format::Yaml {
            out.write_all(b"---\n")?;
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// A changed document, re-serialised.
    pub fn admitted(&mut self, out: &mut dyn Write, value: &Value) -> Result<(), CheckError> {
        out.write_all(b"---\n")?;
        out.write_all(to_yaml(value).as_bytes())?;
        Ok(())
    }

    /// Report output: a part of a namespace that could not be read is an
    /// `error` result in its Report, so the Report does not look clean.
    pub fn report_error(&mut self, namespace: Option<&str>, source: &str, message: &str) {
        if let (Format::Report, Some(namespace)) = (self.format, namespace) {
            self.reports.entry(namespace.to_string()).or_default().push(
                json!({"source": "rollguard", "policy": "rollguard", "rule": "read",
                             "result": "error", "message": format!("{source}: {message}")}),
            );
        }
    }

    /// Report output: writes the Reports of the results held so far.
    pub fn write_reports(&mut self, out: &mut dyn Write) -> Result<(), CheckError> {
        for (namespace, results) in std::mem::take(&mut self.reports) {
            self.admitted(out, &policy_report(&namespace, results))?;
        }
        Ok(())
    }

    pub fn finish(&mut self, out: &mut dyn Write, summary: &Summary) -> Result<(), CheckError> {
        self.write_reports(out)?;
        let line = format!(
            "{} checked{}: {} mutated, {} denied, {} would be denied (audit mode: reported only), {} with warnings, {}",
            plural(summary.objects, "object", "objects"),
            if summary.passed_through > 0 {
                format!(
                    " ({} of kinds rollguard does not check)",
                    summary.passed_through
                )
            } else {
                String::new()
            },
            summary.mutated,
            summary.denied,
            summary.would_deny,
            summary.warned,
            plural(summary.errors, "error", "errors"),
        );
        match self.format {
            Format::Text => writeln!(out, "{line}")?,
            Format::Json => {
                out.write_all(if self.json_entries == 0 {
                    b"]\n"
                } else {
                    b"\n]\n"
                })?;
                eprintln!("{line}");
            }
            Format::Sarif => {
                out.write_all(b"]}]}\n")?;
                eprintln!("{line}");
            }
            Format::Yaml | Format::Diff | Format::Report => eprintln!("{line}"),
        }
        out.flush()?;
        Ok(())
    }
}

/// `file:line`, or the source alone when it has no lines (the cluster).
fn position(source: &str, line: usize) -> String {
    if line > 0 {
        format!("{source}:{line}")
    } else {
        source.to_string()
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn json_report(report: &ObjectReport<'_>) -> Value {
    let mut entry = json!({
        "file": report.source,
        "line": report.line,
        "kind": report.kind,
        "namespace": report.namespace,
        "name": report.name,
        "checked": report.verdict.is_some(),
    });
    if let Some(verdict) = &report.verdict {
        entry["mode"] = json!(verdict.mode.label());
        entry["denied"] =
            json!(verdict.mode == EffectiveMode::Enforce && verdict.denials().next().is_some());
        entry["mutations"] = verdict
            .mutations
            .iter()
            .map(|m| json!({"rule": m.rule.name(), "field": m.field, "old": m.old, "new": m.new, "action": m.action.label()}))
            .collect();
        entry["violations"] = verdict
            .violations
            .iter()
            .map(|v| {
                json!({"rule": v.rule.name(), "action": v.action.label(), "waived": v.waived,
                       "field": v.field, "message": v.message()})
            })
            .collect();
        entry["patch"] = serde_json::to_value(&verdict.patch).unwrap_or(Value::Null);
    }
    entry
}

fn sarif_result(rule: &str, level: &str, message: &str, file: &str, line: usize) -> Value {
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": file},
            "region": {"startLine": line.max(1)}
        }}]
    })
}

/// Violations as errors (deny) or warnings, mutations as notes.
fn sarif_results(report: &ObjectReport<'_>) -> Vec<Value> {
    let Some(verdict) = &report.verdict else {
        return Vec::new();
    };
    let who = report.identity();
    let mut results: Vec<Value> = verdict
        .violations
        .iter()
        .map(|v| {
            let level = if v.action == Action::Deny && verdict.mode == EffectiveMode::Enforce {
                "error"
            } else {
                "warning"
            };
            sarif_result(
                v.rule.name(),
                level,
                &format!("{who}: {}", v.message()),
                report.source,
                report.line,
            )
        })
        .collect();
    results.extend(verdict.mutations.iter().map(|m| {
        let text = format!("{who}: rollguard sets {}", m.change());
        sarif_result(m.rule.name(), "note", &text, report.source, report.line)
    }));
    results
}

/// OpenReports results for one object: a violation fails (deny) or warns,
/// a mutation warns (it would change the object), a clean object passes.
fn report_results(report: &ObjectReport<'_>) -> Vec<Value> {
    let Some(verdict) = &report.verdict else {
        return Vec::new();
    };
    let mut resource = json!({
        "apiVersion": report.original.get("apiVersion"),
        "kind": report.kind,
        "namespace": report.namespace,
        "name": report.name,
        "uid": report.original.pointer("/metadata/uid"),
    });
    // An ObjectReference's fields are strings: leave out the unknown ones
    // (objects from files have no uid) rather than write null.
    if let Some(fields) = resource.as_object_mut() {
        fields.retain(|_, value| !value.is_null());
    }
    let result = |rule: &str, outcome: &str, message: String| {
        json!({"source": "rollguard", "policy": rule, "rule": rule, "result": outcome,
               "message": message, "resources": [resource]})
    };
    let mut results: Vec<Value> = verdict
        .violations
        .iter()
        .map(|v| {
            let outcome = if v.action == Action::Deny {
                "fail"
            } else {
                "warn"
            };
            // The short form: a Report holds every result of a namespace,
            // and the why and the fix are in docs/rules.md under the rule.
            result(v.rule.name(), outcome, format!("{}: {}", v.field, v.detail))
        })
        .collect();
    results.extend(verdict.mutations.iter().map(|m| {
        result(
            m.rule.name(),
            "warn",
            format!("rollguard sets {}", m.change()),
        )
    }));
    if results.is_empty() && verdict.mode != EffectiveMode::Off {
        results.push(result("rollguard", "pass", "nothing to change".to_string()));
    }
    results
}

/// One OpenReports Report for a namespace, ready for `kubectl apply`.
fn policy_report(namespace: &str, results: Vec<Value>) -> Value {
    let count = |outcome: &str| results.iter().filter(|r| r["result"] == outcome).count();
    let summary = json!({"pass": count("pass"), "fail": count("fail"), "warn": count("warn"),
                         "error": count("error"), "skip": count("skip")});
    json!({
        "apiVersion": "openreports.io/v1alpha1",
        "kind": "Report",
        "metadata": {"name": "rollguard-check", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "rollguard"}},
        "source": "rollguard",
        "summary": summary,
        "results": results,
    })
}

fn diff(out: &mut dyn Write, report: &ObjectReport<'_>) -> Result<(), CheckError> {
    if !report.changed() {
        return Ok(());
    }
    let before = to_yaml(report.original);
    let after = to_yaml(report.admitted());
    let header = format!(
        "{} ({})",
        report.identity(),
        position(report.source, report.line)
    );
    let diff = similar::TextDiff::from_lines(&before, &after);
    write!(
        out,
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("a/{header}"), &format!("b/{header}"))
    )?;
    Ok(())
}

fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|err| format!("# cannot render as YAML: {err}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Mode;

    #[test]
    fn every_format_and_mode_label_round_trips() {
        for format in Format::ALL {
            assert_eq!(format.label().parse::<Format>(), Ok(format));
        }
        for mode in EffectiveMode::ALL {
            assert_eq!(mode.label().parse::<EffectiveMode>(), Ok(mode));
        }
        assert_eq!(EffectiveMode::from(Mode::Audit).label(), "audit");
        assert!("Audit".parse::<EffectiveMode>().is_err());
    }
}
