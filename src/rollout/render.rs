//! `rollguard simulate` output: the figures, a `kubectl get rs`-like table
//! sampled whenever something changes, and an SVG of every pod over time.

use std::fmt::Write;

use super::model::{Controller, Counts, PodState, Timeline};
use crate::k8s_semantics::show;

/// One line describing the scenario, e.g. `3 replicas, RollingUpdate maxSurge 0 maxUnavailable 1, ...`.
pub fn describe(timeline: &Timeline) -> String {
    let s = &timeline.scenario;
    let strategy = match &s.controller {
        Controller::Rolling {
            max_surge,
            max_unavailable,
        } => format!(
            "RollingUpdate maxSurge {} maxUnavailable {}",
            show(max_surge),
            show(max_unavailable)
        ),
        Controller::Recreate => "Recreate".to_string(),
        Controller::StatefulSet {
            ordered,
            max_unavailable,
            partition,
            on_delete,
        } => format!(
            "StatefulSet {} {}",
            if *ordered { "OrderedReady" } else { "Parallel" },
            if *on_delete {
                "OnDelete".to_string()
            } else {
                format!("maxUnavailable {max_unavailable} partition {partition}")
            }
        ),
    };
    format!(
        "{} replicas, {strategy}, minReadySeconds {}, ready after {}s, shutdown {}s{}",
        s.replicas,
        s.min_ready_seconds,
        s.ready_after,
        s.shutdown,
        if s.new_never_ready {
            ", new version never ready"
        } else {
            ""
        }
    )
}

/// The figures in one line.
pub fn figures(timeline: &Timeline) -> String {
    let f = &timeline.figures;
    let finished = match f.finished_at {
        Some(t) => format!("done after {t}s"),
        None => format!("not done after {}s", timeline.end()),
    };
    format!(
        "min ready {}, max pods {}, max terminating at once {}, {finished}{}",
        f.min_ready,
        f.max_pods,
        f.max_terminating,
        if f.outage() {
            " - OUTAGE: no ready pod"
        } else {
            ""
        }
    )
}

/// The ReplicaSet table, one block per second in which a count changed.
pub fn table(timeline: &Timeline) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6}  {:<8} {:>7} {:>7} {:>5} {:>11}",
        "TIME", "REVISION", "DESIRED", "CURRENT", "READY", "TERMINATING"
    );
    let mut last = None;
    for sample in &timeline.samples {
        let counts = (sample.old, sample.new);
        if last == Some(counts) {
            continue;
        }
        last = Some(counts);
        for (name, c) in [("old", sample.old), ("new", sample.new)] {
            if c == Counts::default() {
                continue;
            }
            let _ = writeln!(
                out,
                "{:>5}s  {:<8} {:>7} {:>7} {:>5} {:>11}",
                sample.t, name, c.desired, c.current, c.ready, c.terminating
            );
        }
    }
    out
}

const WIDTH: f64 = 800.0;
const LEFT: f64 = 70.0;
const LANE: f64 = 16.0;
const TOP: f64 = 60.0;

fn colour(new: bool, state: PodState) -> &'static str {
    match (new, state) {
        (false, PodState::Ready) => "#4c78a8",
        (false, PodState::Warming) => "#9ecae9",
        (true, PodState::Ready) => "#54a24b",
        (true, PodState::Warming) => "#b5e3a9",
        (_, PodState::Terminating) => "#e45756",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `title` names the workload; the scenario and figures follow below it.
/// Every pod as a lane over time: warming (light), ready (solid),
/// terminating (red); old revision blue, new green.
pub fn svg(title: &str, timeline: &Timeline) -> String {
    let end = timeline.end().max(1) + 1;
    let plot = WIDTH - LEFT - 20.0;
    let x = |t: u32| LEFT + plot * f64::from(t) / f64::from(end);
    let lanes = timeline.pods.len();
    let height = TOP + LANE * lanes as f64 + 70.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="16" font-size="13" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="32">{}</text>"#,
        escape(&describe(timeline))
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="47">{}</text>"#,
        escape(&figures(timeline))
    );
    for (lane, pod) in timeline.pods.iter().enumerate() {
        let y = TOP + LANE * lane as f64;
        let label = match pod.ordinal {
            Some(o) => format!("{} {o}", if pod.new { "new" } else { "old" }),
            None => format!("{} pod", if pod.new { "new" } else { "old" }),
        };
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}">{label}</text>"#,
            y + LANE - 5.0
        );
        // One rectangle per run of seconds in the same state.
        let mut run: Option<(u32, PodState)> = None;
        for t in 0..=end {
            let state = if t == end { None } else { pod.state_at(t) };
            if run.map(|(_, s)| Some(s)) == Some(state) {
                continue;
            }
            if let Some((start, s)) = run.take() {
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                    x(start),
                    y + 2.0,
                    (x(t) - x(start)).max(0.5),
                    LANE - 4.0,
                    colour(pod.new, s)
                );
            }
            run = state.map(|s| (t, s));
        }
    }
    let axis = TOP + LANE * lanes as f64 + 6.0;
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{axis}" x2="{:.1}" y2="{axis}" stroke="#333"/>"##,
        x(end)
    );
    let step = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|s| end / s <= 10)
        .unwrap_or(7200);
    for t in (0..=end).step_by(step as usize) {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{axis}" x2="{0:.1}" y2="{1}" stroke="#333"/><text x="{0:.1}" y="{2}" text-anchor="middle">{t}s</text>"##,
            x(t),
            axis + 4.0,
            axis + 16.0
        );
    }
    let legend = axis + 36.0;
    for (i, (new, state, name)) in [
        (false, PodState::Ready, "old ready"),
        (false, PodState::Warming, "old warming"),
        (true, PodState::Ready, "new ready"),
        (true, PodState::Warming, "new warming"),
        (true, PodState::Terminating, "terminating (flushing)"),
    ]
    .into_iter()
    .enumerate()
    {
        let lx = LEFT + 130.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="12" height="10" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
            legend - 9.0,
            colour(new, state),
            lx + 16.0,
            legend
        );
    }
    out.push_str("</svg>\n");
    out
}
