//! `rollguard check`: the webhook's engine, offline, over manifest files, for
//! CI and for a first look. Reads documents one at a time and writes each
//! report as it goes, so memory stays flat however many objects there are.

pub mod cluster;
mod input;
mod report;

use std::io::{Read, Write};

use serde_json::Value;
use thiserror::Error;

use crate::policy::{self, EffectiveMode, EvalRequest, Mode, Stage, Verdict};
use crate::settings::Settings;
use crate::workload::WorkloadKind;

pub use input::{
    documents, expand, objects, parse, Document, Documents, Input, ParseFailure, Parsed,
};
pub use report::Format;

#[derive(Debug, Error)]
pub enum CheckError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub mode: Mode,
    pub format: Format,
    pub color: bool,
    pub settings: Settings,
}

/// How reports name an object: `metadata.name`, else `generateName*` (a
/// Pod made by a ReplicaSet has no name yet), else `<unnamed>`.
pub fn display_name(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    text("/metadata/name")
        .map(str::to_string)
        .or_else(|| text("/metadata/generateName").map(|g| format!("{g}*")))
        .unwrap_or_else(|| "<unnamed>".to_string())
}

/// Counts for the summary line and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub objects: usize,
    /// Objects of kinds rollguard does not handle, passed through.
    pub passed_through: usize,
    pub mutated: usize,
    /// Objects judged in enforce mode with a deny-level violation: the
    /// webhook would refuse them. The exit code counts only these.
    pub denied: usize,
    /// Objects judged in audit mode (the run's `--mode`, a namespace's label
    /// or the object's own annotation) with a deny-level violation: reported,
    /// never refused, so they do not fail the run.
    pub would_deny: usize,
    pub warned: usize,
    pub errors: usize,
}

impl Summary {
    /// Adds one judged object to the counts.
    pub fn count(&mut self, report: &ObjectReport<'_>) {
        self.objects += 1;
        match (&report.verdict, &report.error) {
            (_, Some(_)) => self.errors += 1,
            (None, None) => self.passed_through += 1,
            (Some(verdict), None) => {
                self.mutated += usize::from(!verdict.mutations.is_empty());
                let denies = verdict.denials().next().is_some();
                self.denied += usize::from(denies && verdict.mode == EffectiveMode::Enforce);
                self.would_deny += usize::from(denies && verdict.mode == EffectiveMode::Audit);
                self.warned += usize::from(
                    verdict
                        .violations
                        .iter()
                        .any(|v| v.action == crate::rules::Action::Warn),
                );
            }
        }
    }

    /// 0 nothing denied, 1 an object judged in enforce mode would be
    /// denied, 2 unreadable input.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 {
            2
        } else if self.denied > 0 {
            1
        } else {
            0
        }
    }
}

/// One object and what the engine made of it.
#[derive(Debug, Clone)]
pub struct ObjectReport<'a> {
    pub source: &'a str,
    pub line: usize,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub original: &'a Value,
    /// None for kinds rollguard leaves alone.
    pub verdict: Option<Verdict>,
    /// Set when the object could not be evaluated.
    pub error: Option<String>,
}

impl ObjectReport<'_> {
    /// `Kind/namespace/name`, or `Kind/name` without a namespace.
    pub fn identity(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The object as rollguard would admit it.
    pub fn admitted(&self) -> &Value {
        self.verdict.as_ref().map_or(self.original, |v| &v.admitted)
    }

    pub fn changed(&self) -> bool {
        self.verdict.as_ref().is_some_and(|v| !v.patch.0.is_empty())
    }
}

/// Checks every input and writes the report; returns the counts.
pub fn run(
    inputs: &[Input],
    options: &CheckOptions,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Summary, CheckError> {
    let mut summary = Summary::default();
    let mut reporter = report::Reporter::new(options.format, options.color);
    reporter.begin(out)?;
    for input in inputs {
        let name = input.name();
        match input {
            Input::Stdin => {
                let reader = std::io::BufReader::new(&mut *stdin);
                check_stream(&name, reader, options, &mut reporter, &mut summary, out)?;
            }
            Input::File(path) => match std::fs::File::open(path) {
                Ok(file) => {
                    let reader = std::io::BufReader::new(file);
                    check_stream(&name, reader, options, &mut reporter, &mut summary, out)?;
                }
                Err(err) => {
                    summary.errors += 1;
                    reporter.error(out, &name, 0, &format!("cannot read: {err}"))?;
                }
            },
        }
    }
    reporter.finish(out, &summary)?;
    Ok(summary)
}

/// A check over objects that arrive one at a time from a source other than
/// files (the cluster): the same engine, reporter and counts as [`run`].
pub struct Session {
    reporter: report::Reporter,
    pub summary: Summary,
}

impl Session {
    pub fn begin(options: &CheckOptions, out: &mut dyn Write) -> Result<Session, CheckError> {
        let mut reporter = report::Reporter::new(options.format, options.color);
        reporter.begin(out)?;
        Ok(Session {
            reporter,
            summary: Summary::default(),
        })
    }

    /// Judges one object (in `options.mode`: a namespace's own mode may
    /// differ from the run's) and writes its report. Yaml output gets the
    /// object without the fields the API server fills in, so it can be applied.
    pub fn object(
        &mut self,
        source: &str,
        object: &Value,
        options: &CheckOptions,
        out: &mut dyn Write,
    ) -> Result<(), CheckError> {
        let report = evaluate(source, 0, object, options);
        self.summary.count(&report);
        self.reporter.object(out, &report)?;
        if self.reporter.wants_admitted() {
            self.reporter
                .admitted(out, &without_server_fields(report.admitted()))?;
        }
        Ok(())
    }

    /// A part of the source that could not be read: reported (in the Report
    /// of `namespace` too, for report output), counted, not fatal.
    pub fn error(
        &mut self,
        namespace: Option<&str>,
        source: &str,
        message: &str,
        out: &mut dyn Write,
    ) -> Result<(), CheckError> {
        self.summary.errors += 1;
        self.reporter.error(out, source, 0, message)?;
        self.reporter.report_error(namespace, source, message);
        Ok(())
    }

    /// Something the user should know that did not stop the check.
    pub fn warning(
        &mut self,
        source: &str,
        message: &str,
        out: &mut dyn Write,
    ) -> Result<(), CheckError> {
        self.reporter.warning(out, source, 0, message)
    }

    /// Every object of the namespaces so far has been judged: report output
    /// writes their Reports now, so results are held for one namespace only.
    pub fn namespaces_done(&mut self, out: &mut dyn Write) -> Result<(), CheckError> {
        self.reporter.write_reports(out)
    }

    pub fn finish(mut self, out: &mut dyn Write) -> Result<Summary, CheckError> {
        self.reporter.finish(out, &self.summary)?;
        Ok(self.summary)
    }
}

/// Fields the API server sets on a stored object: a copy without them can
/// be applied (`resourceVersion` and `uid` would make apply conflict or fail,
/// `managedFields` and `status` are not the user's to write).
fn without_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    object
}

fn check_stream(
    source: &str,
    reader: impl std::io::BufRead,
    options: &CheckOptions,
    reporter: &mut report::Reporter,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> Result<(), CheckError> {
    for doc in input::Documents::new(reader) {
        let doc = match doc {
            Ok(doc) => doc,
            Err(failure) => {
                summary.errors += 1;
                reporter.parse_failure(out, source, &failure)?;
                continue;
            }
        };
        let parsed = match input::parse(&doc) {
            Ok(parsed) => {
                for (line, message) in &parsed.warnings {
                    reporter.warning(out, source, *line, message)?;
                }
                parsed.value
            }
            Err(failure) => {
                summary.errors += 1;
                reporter.parse_failure(out, source, &failure)?;
                reporter.passthrough(out, &doc.text)?;
                continue;
            }
        };
        let is_list = parsed.get("items").is_some_and(Value::is_array)
            && parsed
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
        let list_shell = is_list.then(|| {
            let mut shell = parsed.clone();
            shell["items"] = Value::Array(Vec::new());
            shell
        });
        let objects = input::objects(parsed);
        let mut admitted_items = Vec::new();
        let mut any_changed = false;
        for object in &objects {
            let report = evaluate(source, doc.line, object, options);
            summary.count(&report);
            any_changed |= report.changed();
            reporter.object(out, &report)?;
            if reporter.wants_admitted() {
                admitted_items.push(report.admitted().clone());
            }
        }
        if reporter.wants_admitted() {
            if !any_changed {
                reporter.passthrough(out, &doc.text)?;
            } else if let Some(mut shell) = list_shell {
                shell["items"] = Value::Array(admitted_items);
                reporter.admitted(out, &shell)?;
            } else if let Some(object) = admitted_items.first() {
                reporter.admitted(out, object)?;
            }
        }
    }
    Ok(())
}

fn evaluate<'a>(
    source: &'a str,
    line: usize,
    object: &'a Value,
    options: &CheckOptions,
) -> ObjectReport<'a> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut report = ObjectReport {
        source,
        line,
        kind: text("/kind").unwrap_or_else(|| "<no kind>".to_string()),
        namespace: text("/metadata/namespace"),
        name: display_name(object),
        original: object,
        verdict: None,
        error: None,
    };
    let Some(kind) = WorkloadKind::from_object(object) else {
        return report;
    };
    let request = EvalRequest {
        kind,
        object,
        stage: Stage::Full,
        mode: options.mode,
    };
    match policy::evaluate(&request, &options.settings) {
        Ok(verdict) => report.verdict = Some(verdict),
        Err(err) => report.error = Some(err.to_string()),
    }
    report
}
