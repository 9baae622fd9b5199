//! `rollguard simulate`: reads manifests as `check` does, runs each
//! Deployment and StatefulSet through the engine, and simulates its rollout
//! as written and as rollguard admits it. I/O lives here; the model is pure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::render;
use super::scenario::{self, Assumptions};
use super::{simulate, Timeline};
use crate::check::{self, CheckError, Input};
use crate::policy::{self, Mode, Stage};
use crate::settings::Settings;
use crate::workload::WorkloadKind;

/// How to show each rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Figures and the ReplicaSet table.
    Text,
    /// One SVG per workload and version (as written, as admitted) into --out.
    Svg,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub output: Output,
    /// Directory for SVG files.
    pub out_dir: Option<PathBuf>,
    pub assume: Assumptions,
    pub settings: Settings,
}

/// One workload's rollout, as written and as admitted.
#[derive(Debug, Clone)]
pub struct Simulated {
    pub identity: String,
    /// `rollguard.io/profile: stateful`: its pods flush state on exit.
    pub stateful: bool,
    pub written: Timeline,
    /// None when rollguard denies the object (it is never rolled).
    pub admitted: Option<Timeline>,
    pub denied_by: Vec<String>,
}

impl Simulated {
    /// What goes wrong in the rollout rollguard admits: no Ready pod at some
    /// second, stateful pods flushing in parallel, or flushes killed at the
    /// grace period. Empty when it is safe or denied (never rolled).
    pub fn admitted_harm(&self) -> Vec<&'static str> {
        let Some(admitted) = &self.admitted else {
            return Vec::new();
        };
        let mut harm = Vec::new();
        if admitted.outage() {
            harm.push("outage");
        }
        if self.stateful && admitted.figures.max_terminating > 1 {
            harm.push("parallel flush");
        }
        if admitted.figures.cut_short > 0 {
            harm.push("flush cut short");
        }
        harm
    }
}

/// `Kind/namespace/name` of an object, as `check` names it.
fn identity(kind: WorkloadKind, object: &Value) -> String {
    let text = |path: &str| object.pointer(path).and_then(Value::as_str);
    format!(
        "{}/{}{}",
        kind.name(),
        text("/metadata/namespace")
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        crate::check::display_name(object)
    )
}

/// Simulates one object; None for kinds that do not roll. An error names
/// the object.
pub fn simulate_object(object: &Value, options: &Options) -> Option<Result<Simulated, String>> {
    let kind = WorkloadKind::from_object(object)?;
    let identity = identity(kind, object);
    let failed = |err: String| Some(Err(format!("{identity}: {err}")));
    let written = match scenario::from_object(object, options.assume)? {
        Ok(s) => simulate(&s),
        Err(err) => return failed(err),
    };
    let request = policy::EvalRequest {
        kind,
        object,
        stage: Stage::Full,
        mode: Mode::Enforce,
    };
    let verdict = match policy::evaluate(&request, &options.settings) {
        Ok(v) => v,
        Err(err) => return failed(err.to_string()),
    };
    let denied_by: Vec<String> = verdict
        .denials()
        .map(|v| v.rule.name().to_string())
        .collect();
    let admitted = if verdict.denied() {
        None
    } else {
        match scenario::from_object(&verdict.admitted, options.assume)? {
            Ok(s) => Some(simulate(&s)),
            Err(err) => return failed(err),
        }
    };
    Some(Ok(Simulated {
        stateful: scenario::is_stateful(object),
        identity,
        written,
        admitted,
        denied_by,
    }))
}

/// What a run found, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Inputs or objects that could not be read or simulated.
    pub unreadable: usize,
    /// Admitted rollouts with an outage, a parallel stateful flush or a
    /// flush cut short.
    pub harmful: usize,
}

impl Summary {
    /// 2 for unreadable input (as `check`), 1 when an admitted rollout
    /// does harm, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.unreadable > 0 {
            2
        } else if self.harmful > 0 {
            1
        } else {
            0
        }
    }
}

/// Runs `simulate` over the inputs.
pub fn run(
    inputs: &[Input],
    options: &Options,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Summary, CheckError> {
    if options.output == Output::Svg && options.out_dir.is_none() {
        return Err(CheckError::Usage(
            "--output svg writes one file per workload: give a directory with --out DIR"
                .to_string(),
        ));
    }
    if let Some(dir) = options
        .out_dir
        .as_ref()
        .filter(|_| options.output == Output::Svg)
    {
        std::fs::create_dir_all(dir)
            .map_err(|err| CheckError::Usage(format!("cannot create {}: {err}", dir.display())))?;
    }
    let mut summary = Summary::default();
    for input in inputs {
        let name = input.name();
        let text = match input {
            Input::Stdin => {
                let mut text = String::new();
                stdin.read_to_string(&mut text).map(|_| text)
            }
            Input::File(path) => std::fs::read_to_string(path),
        };
        let text = match text {
            Ok(text) => text,
            Err(err) => {
                summary.unreadable += 1;
                writeln!(out, "{name}: cannot read: {err}")?;
                continue;
            }
        };
        for doc in check::documents(&text) {
            let value = match check::parse(&doc) {
                Ok(parsed) => parsed.value,
                Err(failure) => {
                    summary.unreadable += 1;
                    writeln!(out, "{name}:{}: {}", failure.line, failure.message)?;
                    continue;
                }
            };
            for object in check::objects(value) {
                match simulate_object(&object, options) {
                    None => {}
                    Some(Err(err)) => {
                        summary.unreadable += 1;
                        writeln!(out, "{name}:{}: {err}", doc.line)?;
                    }
                    Some(Ok(sim)) => {
                        if !sim.admitted_harm().is_empty() {
                            summary.harmful += 1;
                        }
                        show(&sim, &format!("{name}:{}", doc.line), options, out)?;
                    }
                }
            }
        }
    }
    Ok(summary)
}

fn show(
    sim: &Simulated,
    source: &str,
    options: &Options,
    out: &mut dyn Write,
) -> Result<(), CheckError> {
    writeln!(out, "{} ({source})", sim.identity)?;
    writeln!(out, "  as written:  {}", render::describe(&sim.written))?;
    writeln!(out, "               {}", render::figures(&sim.written))?;
    match &sim.admitted {
        Some(admitted) if admitted.scenario == sim.written.scenario => {
            writeln!(out, "  as admitted: unchanged")?;
        }
        Some(admitted) => {
            writeln!(out, "  as admitted: {}", render::describe(admitted))?;
            writeln!(out, "               {}", render::figures(admitted))?;
        }
        None => writeln!(
            out,
            "  denied by rollguard ({}): never rolled",
            sim.denied_by.join(", ")
        )?,
    }
    let harm = sim.admitted_harm();
    if !harm.is_empty() {
        writeln!(out, "  harm as admitted: {}", harm.join(", "))?;
    }
    let shown = sim.admitted.as_ref().unwrap_or(&sim.written);
    match (options.output, &options.out_dir) {
        (Output::Svg, Some(dir)) => {
            let stem = file_stem(&sim.identity);
            let mut files = vec![(format!("{stem}.written.svg"), "as written", &sim.written)];
            if let Some(admitted) = &sim.admitted {
                files.push((
                    format!("{stem}.admitted.svg"),
                    "as admitted by rollguard",
                    admitted,
                ));
            }
            for (file, label, timeline) in files {
                let path = dir.join(file);
                let title = format!("{} {label}", sim.identity);
                write_file(&path, &render::svg(&title, timeline))?;
                writeln!(out, "  wrote {}", path.display())?;
            }
        }
        _ => {
            for line in render::table(shown).lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(out)?;
    Ok(())
}

fn file_stem(identity: &str) -> String {
    identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn write_file(path: &Path, text: &str) -> Result<(), CheckError> {
    std::fs::write(path, text)
        .map_err(|err| CheckError::Usage(format!("cannot write {}: {err}", path.display())))
}
