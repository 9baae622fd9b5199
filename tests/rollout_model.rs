//! The controller model against timelines derived by hand from the
//! controllers' code (rolling.go, recreate.go, stateful_set_control.go).
//! Each case states the seconds at which pods are created and stopped.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rollguard::rollout::{simulate, Controller, Figures, Scenario};

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}
fn pct(text: &str) -> IntOrString {
    IntOrString::String(text.to_string())
}
fn rolling(surge: IntOrString, unavailable: IntOrString) -> Controller {
    Controller::Rolling {
        max_surge: surge,
        max_unavailable: unavailable,
    }
}
fn sts(ordered: bool, max_unavailable: i32, partition: i32) -> Controller {
    Controller::StatefulSet {
        ordered,
        max_unavailable,
        partition,
        on_delete: false,
    }
}

struct Case {
    name: &'static str,
    replicas: i32,
    controller: Controller,
    min_ready: u32,
    ready_after: u32,
    shutdown: u32,
    never_ready: bool,
    /// Seconds at which new pods are created, in order.
    created: &'static [u32],
    /// Seconds at which old pods start terminating, in order.
    stopped: &'static [u32],
    figures: Figures,
}

fn figures(
    min_ready: i32,
    max_pods: i32,
    max_terminating: i32,
    finished_at: Option<u32>,
) -> Figures {
    Figures {
        min_ready,
        max_pods,
        max_terminating,
        finished_at,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // The measured case: each old pod is stopped as soon as the previous
        // replacement is Ready, while the earlier ones still flush (30 s).
        Case {
            name: "3 replicas 0/1, minReadySeconds 0",
            replicas: 3,
            controller: rolling(int(0), int(1)),
            min_ready: 0,
            ready_after: 3,
            shutdown: 30,
            never_ready: false,
            created: &[0, 3, 6],
            stopped: &[0, 3, 6],
            figures: figures(2, 6, 3, Some(36)),
        },
        // minReadySeconds covering the flush: the next old pod is stopped
        // only when the replacement is available (3 + 30 s), after the flush.
        Case {
            name: "3 replicas 0/1, minReadySeconds 30 covers a 25 s flush",
            replicas: 3,
            controller: rolling(int(0), int(1)),
            min_ready: 30,
            ready_after: 3,
            shutdown: 25,
            never_ready: false,
            created: &[0, 33, 66],
            stopped: &[0, 33, 66],
            figures: figures(2, 4, 1, Some(99)),
        },
        // 25% of 4: surge 1 (rounded up), unavailable 1 (rounded down).
        Case {
            name: "4 replicas 25%/25%",
            replicas: 4,
            controller: rolling(pct("25%"), pct("25%")),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[0, 0, 3, 3],
            stopped: &[0, 3, 3, 6],
            figures: figures(3, 8, 4, Some(16)),
        },
        // 100% surge of 1 is 1; maxUnavailable 1 lets the controller stop the
        // only old pod at once: a broken release is an outage.
        Case {
            name: "1 replica 100%/1, new version never ready",
            replicas: 1,
            controller: rolling(pct("100%"), int(1)),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: true,
            created: &[0],
            stopped: &[0],
            figures: figures(0, 2, 1, None),
        },
        Case {
            name: "1 replica 1/0, new version never ready",
            replicas: 1,
            controller: rolling(int(1), int(0)),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: true,
            created: &[0],
            stopped: &[],
            figures: figures(1, 2, 0, None),
        },
        Case {
            name: "1 replica 1/0",
            replicas: 1,
            controller: rolling(int(1), int(0)),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[0],
            stopped: &[3],
            figures: figures(1, 2, 1, Some(13)),
        },
        // Warm-up of 20 s: each replacement is available 23 s after creation.
        Case {
            name: "4 replicas 1/0, minReadySeconds 20",
            replicas: 4,
            controller: rolling(int(1), int(0)),
            min_ready: 20,
            ready_after: 3,
            shutdown: 5,
            never_ready: false,
            created: &[0, 23, 46, 69],
            stopped: &[23, 46, 69, 92],
            // 6, not replicas + surge: the pod still terminating is not counted.
            figures: figures(4, 6, 1, Some(97)),
        },
        Case {
            name: "3 replicas Recreate",
            replicas: 3,
            controller: Controller::Recreate,
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[10, 10, 10],
            stopped: &[0, 0, 0],
            figures: figures(0, 3, 3, Some(13)),
        },
        // OrderedReady waits for each replaced pod to be gone, recreated and Ready.
        Case {
            name: "StatefulSet OrderedReady 3",
            replicas: 3,
            controller: sts(true, 1, 0),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[10, 23, 36],
            stopped: &[0, 13, 26],
            figures: figures(2, 3, 1, Some(39)),
        },
        Case {
            name: "StatefulSet Parallel maxUnavailable 2",
            replicas: 3,
            controller: sts(false, 2, 0),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[10, 10, 23],
            stopped: &[0, 0, 13],
            figures: figures(1, 3, 2, Some(26)),
        },
        Case {
            name: "StatefulSet OrderedReady partition 2",
            replicas: 3,
            controller: sts(true, 1, 2),
            min_ready: 0,
            ready_after: 3,
            shutdown: 10,
            never_ready: false,
            created: &[10],
            stopped: &[0],
            figures: figures(2, 3, 1, Some(13)),
        },
    ]
}

#[test]
fn model_matches_hand_derived_timelines() {
    for case in cases() {
        let timeline = simulate(&Scenario {
            replicas: case.replicas,
            controller: case.controller.clone(),
            min_ready_seconds: case.min_ready,
            ready_after: case.ready_after,
            shutdown: case.shutdown,
            new_never_ready: case.never_ready,
        });
        let created: Vec<u32> = timeline
            .pods
            .iter()
            .filter(|p| p.new)
            .map(|p| p.created)
            .collect();
        let mut stopped: Vec<u32> = timeline
            .pods
            .iter()
            .filter(|p| !p.new)
            .filter_map(|p| p.terminating_since)
            .collect();
        stopped.sort_unstable();
        assert_eq!(created, case.created, "{}: new pods created", case.name);
        assert_eq!(stopped, case.stopped, "{}: old pods stopped", case.name);
        assert_eq!(timeline.figures, case.figures, "{}: figures", case.name);
    }
}

#[test]
fn on_delete_never_replaces_a_pod() {
    let timeline = simulate(&Scenario {
        replicas: 3,
        controller: Controller::StatefulSet {
            ordered: true,
            max_unavailable: 1,
            partition: 0,
            on_delete: true,
        },
        min_ready_seconds: 0,
        ready_after: 3,
        shutdown: 10,
        new_never_ready: false,
    });
    assert!(timeline
        .pods
        .iter()
        .all(|p| !p.new && p.terminating_since.is_none()));
    assert_eq!(timeline.figures.finished_at, None);
}

#[test]
fn zero_replicas_roll_nothing() {
    let timeline = simulate(&Scenario {
        replicas: 0,
        controller: rolling(int(0), int(1)),
        min_ready_seconds: 0,
        ready_after: 3,
        shutdown: 10,
        new_never_ready: false,
    });
    assert!(timeline.pods.is_empty());
    assert_eq!(timeline.figures.max_terminating, 0);
}
