//! `rollguard simulate` output: the figures, a `kubectl get rs`-like table
//! sampled whenever something changes, and an SVG of every pod over time.

use std::fmt::Write;

use super::model::{Controller, Counts, Pod, PodState, Timeline, HORIZON_SECONDS};
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
    let replicas = if s.simulated_replicas() == s.replicas {
        format!(
            "{} replica{}",
            s.replicas,
            if s.replicas == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "simulated {} of {} replicas",
            s.simulated_replicas(),
            s.replicas
        )
    };
    let shutdown = if s.shutdown_cut_short() {
        format!(
            "shutdown {}s (killed at the {}s grace period)",
            s.shutdown, s.grace_period
        )
    } else {
        format!("shutdown {}s", s.shutdown)
    };
    format!(
        "{replicas}, {strategy}{}, minReadySeconds {}, ready after {}s, {shutdown}{}",
        if s.paused && !matches!(s.controller, Controller::StatefulSet { .. }) {
            " (paused)"
        } else {
            ""
        },
        s.min_ready_seconds,
        s.ready_after,
        if s.new_never_ready {
            ", new version never ready"
        } else {
            ""
        }
    )
}

/// The figures in one line, with what went wrong.
pub fn figures(timeline: &Timeline) -> String {
    let s = &timeline.scenario;
    if timeline.rolls_nothing() {
        return if matches!(s.controller, Controller::StatefulSet { .. }) {
            "OnDelete: nothing rolls; a pod is replaced only when someone deletes it".to_string()
        } else {
            "paused (spec.paused): no rollout until `kubectl rollout resume`".to_string()
        };
    }
    let f = &timeline.figures;
    let finished = match f.finished_at {
        Some(t) => format!("done after {t}s"),
        None if timeline.end() >= HORIZON_SECONDS => {
            format!("not done after {HORIZON_SECONDS}s (simulation horizon)")
        }
        None if s.new_never_ready => "stalled: the new version never becomes Ready".to_string(),
        None => format!("stalled after {}s", timeline.end()),
    };
    let mut line = format!(
        "min ready {}, max pods {}, max terminating at once {}, {finished}",
        f.min_ready, f.max_pods, f.max_terminating
    );
    if f.cut_short > 0 {
        let _ = write!(
            line,
            " - {} flushes cut short by the grace period",
            f.cut_short
        );
    }
    if timeline.outage() {
        line.push_str(" - OUTAGE: no ready pod");
    }
    line
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

const WIDTH: f64 = 900.0;
const LEFT: f64 = 70.0;
const LANE: f64 = 16.0;
const TOP: f64 = 60.0;
/// The mark where the kubelet killed a pod whose flush was not over.
const KILLED: &str = "#000000";
/// Horizontal room for one legend entry.
const LEGEND_STEP: f64 = 145.0;
/// Pods drawn at most: past this a picture is too tall to read.
const MAX_LANES: usize = 200;

/// A pod's states as (from, to, state) runs before `end`: warming until
/// Ready, Ready until stopped, terminating until gone.
fn phases(pod: &Pod, end: u32) -> Vec<(u32, u32, PodState)> {
    let gone = pod.gone_at.unwrap_or(end).min(end);
    let stopped = pod.terminating_since.unwrap_or(gone).min(gone);
    let ready = pod.ready_at.unwrap_or(stopped).clamp(pod.created, stopped);
    [
        (pod.created, ready, PodState::Warming),
        (ready, stopped, PodState::Ready),
        (stopped, gone, PodState::Terminating),
    ]
    .into_iter()
    .filter(|(from, to, _)| from < to)
    .collect()
}

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
    let lanes = timeline.pods.len().min(MAX_LANES);
    let cut_short = timeline.scenario.shutdown_cut_short();
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
    let mut figures = figures(timeline);
    if timeline.pods.len() > lanes {
        let _ = write!(
            figures,
            " (first {lanes} of {} pods drawn)",
            timeline.pods.len()
        );
    }
    let _ = writeln!(out, r#"<text x="10" y="47">{}</text>"#, escape(&figures));
    for (lane, pod) in timeline.pods.iter().take(lanes).enumerate() {
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
        let phases = phases(pod, end);
        for &(start, stop, state) in &phases {
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                x(start),
                y + 2.0,
                (x(stop) - x(start)).max(0.5),
                LANE - 4.0,
                colour(pod.new, state)
            );
        }
        let killed = phases
            .last()
            .filter(|p| p.2 == PodState::Terminating && cut_short);
        if let Some(&(_, gone, _)) = killed.filter(|_| pod.gone_at.is_some_and(|g| g <= end)) {
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="3" height="{:.1}" fill="{KILLED}"/>"#,
                x(gone) - 3.0,
                y + 1.0,
                LANE - 2.0
            );
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
        let lx = LEFT + LEGEND_STEP * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="12" height="10" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
            legend - 9.0,
            colour(new, state),
            lx + 16.0,
            legend
        );
    }
    if cut_short {
        let lx = LEFT + LEGEND_STEP * 5.0;
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="3" height="10" fill="{KILLED}"/><text x="{}" y="{}">killed mid-flush</text>"#,
            legend - 9.0,
            lx + 7.0,
            legend
        );
    }
    out.push_str("</svg>\n");
    out
}
