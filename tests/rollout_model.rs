//! The controller model against timelines derived by hand from the
//! controllers' code (rolling.go, recreate.go, stateful_set_control.go).
//! Each case states the seconds at which pods are created and stopped.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rollguard::rollout::model::{HORIZON_SECONDS, MAX_REPLICAS};
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
    /// terminationGracePeriodSeconds.
    grace: u32,
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
        cut_short: 0,
        finished_at,
    }
}

/// A scenario with a 30 s grace period and nothing broken or paused.
fn scenario(replicas: i32, controller: Controller, ready_after: u32, shutdown: u32) -> Scenario {
    Scenario {
        replicas,
        controller,
        min_ready_seconds: 0,
        ready_after,
        shutdown,
        grace_period: 30,
        new_never_ready: false,
        paused: false,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
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
            grace: 30,
            never_ready: false,
            created: &[10],
            stopped: &[0],
            figures: figures(2, 3, 1, Some(13)),
        },
        // The ingester as written: 25%/25% of 3 is 1/0, each replacement is
        // available 65 s after creation, and the 2400 s flush is cut at the
        // 30 s grace period: one pod terminates at a time, every flush is lost.
        Case {
            name: "3 replicas 1/0, minReadySeconds 60, 2400 s shutdown, 30 s grace",
            replicas: 3,
            controller: rolling(pct("25%"), pct("25%")),
            min_ready: 60,
            ready_after: 5,
            shutdown: 2400,
            grace: 30,
            never_ready: false,
            created: &[0, 65, 130],
            stopped: &[65, 130, 195],
            figures: Figures {
                cut_short: 3,
                ..figures(3, 5, 1, Some(225))
            },
        },
        // A grace period covering the shutdown: the flush runs to the end.
        Case {
            name: "3 replicas 1/0, minReadySeconds 60, 100 s shutdown, 120 s grace",
            replicas: 3,
            controller: rolling(int(1), int(0)),
            min_ready: 60,
            ready_after: 5,
            shutdown: 100,
            grace: 120,
            never_ready: false,
            created: &[0, 65, 130],
            stopped: &[65, 130, 195],
            // The first flush (65..165) overlaps the second (130..230).
            figures: figures(3, 6, 2, Some(295)),
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
            grace_period: case.grace,
            new_never_ready: case.never_ready,
            paused: false,
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
    let on_delete = Controller::StatefulSet {
        ordered: true,
        max_unavailable: 1,
        partition: 0,
        on_delete: true,
    };
    let timeline = simulate(&scenario(3, on_delete, 3, 10));
    assert!(timeline
        .pods
        .iter()
        .all(|p| !p.new && p.terminating_since.is_none()));
    assert_eq!(timeline.figures.finished_at, None);
    assert!(timeline.rolls_nothing());
    assert!(!timeline.outage());
}

#[test]
fn a_paused_deployment_rolls_nothing() {
    let timeline = simulate(&Scenario {
        paused: true,
        ..scenario(3, rolling(int(0), int(1)), 3, 10)
    });
    assert_eq!(timeline.pods.len(), 3);
    assert!(timeline.pods.iter().all(|p| !p.new && p.gone_at.is_none()));
    assert_eq!(timeline.figures.min_ready, 3);
    assert_eq!(timeline.figures.finished_at, None);
    assert!(timeline.rolls_nothing());
}

#[test]
fn zero_replicas_roll_nothing_and_are_no_outage() {
    let timeline = simulate(&scenario(0, rolling(int(0), int(1)), 3, 10));
    assert!(timeline.pods.is_empty());
    assert_eq!(timeline.figures.max_terminating, 0);
    assert_eq!(timeline.figures.min_ready, 0);
    assert!(!timeline.outage());
}

/// New pods' creation times and old pods' stop times.
fn created_and_stopped(scenario: &Scenario) -> (Vec<u32>, Vec<u32>, Figures) {
    let timeline = simulate(scenario);
    let created = timeline.pods.iter().filter(|p| p.new).map(|p| p.created);
    let mut stopped: Vec<u32> = timeline
        .pods
        .iter()
        .filter(|p| !p.new)
        .filter_map(|p| p.terminating_since)
        .collect();
    stopped.sort_unstable();
    (created.collect(), stopped, timeline.figures)
}

#[test]
fn surges_at_the_type_limits_create_every_replacement_at_once() {
    // Any surge of at least the replicas creates all new pods at t=0; the
    // old ones go when the new are Ready (maxUnavailable 0).
    for surge in [
        pct("4611686018427387904%"),
        pct("999999999999%"),
        int(i32::MAX),
    ] {
        let (created, stopped, figures) =
            created_and_stopped(&scenario(3, rolling(surge.clone(), int(0)), 3, 10));
        assert_eq!(created, [0, 0, 0], "maxSurge {surge:?}");
        assert_eq!(stopped, [3, 3, 3], "maxSurge {surge:?}");
        assert_eq!(figures, figures_of(3, 6, 3, Some(13)), "maxSurge {surge:?}");
    }
}

#[test]
fn max_unavailable_at_the_type_limit_stops_every_old_pod_at_once() {
    for unavailable in [int(i32::MAX), pct("999999999999%")] {
        let (created, stopped, figures) =
            created_and_stopped(&scenario(3, rolling(int(0), unavailable.clone()), 3, 10));
        assert_eq!(created, [0, 0, 0], "maxUnavailable {unavailable:?}");
        assert_eq!(stopped, [0, 0, 0], "maxUnavailable {unavailable:?}");
        assert_eq!(
            figures,
            figures_of(0, 6, 3, Some(10)),
            "maxUnavailable {unavailable:?}"
        );
    }
    let (created, stopped, figures) =
        created_and_stopped(&scenario(3, sts(false, i32::MAX, 0), 3, 10));
    assert_eq!((created, stopped), (vec![10, 10, 10], vec![0, 0, 0]));
    assert_eq!(figures, figures_of(0, 3, 3, Some(13)));
}

#[test]
fn negative_and_extreme_settings_do_not_panic() {
    let controllers = [
        rolling(int(i32::MIN), int(i32::MIN)),
        rolling(int(i32::MAX), int(i32::MAX)),
        rolling(int(-1), int(0)),
        sts(true, i32::MIN, i32::MIN),
        sts(true, 1, i32::MAX),
        Controller::Recreate,
    ];
    for controller in controllers {
        for (min_ready, ready_after, shutdown, grace) in
            [(u32::MAX, u32::MAX, u32::MAX, u32::MAX), (0, 0, 0, 0)]
        {
            let timeline = simulate(&Scenario {
                min_ready_seconds: min_ready,
                grace_period: grace,
                ..scenario(5, controller.clone(), ready_after, shutdown)
            });
            assert!(
                timeline.end() <= HORIZON_SECONDS,
                "{controller:?}: ends at {}",
                timeline.end()
            );
        }
    }
}

fn figures_of(min_ready: i32, max_pods: i32, max_terminating: i32, done: Option<u32>) -> Figures {
    figures(min_ready, max_pods, max_terminating, done)
}

#[test]
fn replicas_beyond_the_cap_are_simulated_at_the_cap_and_stay_fast() {
    // Timings are printed (`--nocapture`), never asserted.
    let controllers = [
        ("1/0", rolling(int(1), int(0))),
        ("0/1", rolling(int(0), int(1))),
        ("25%/25%", rolling(pct("25%"), pct("25%"))),
        ("Recreate", Controller::Recreate),
        ("StatefulSet OrderedReady", sts(true, 1, 0)),
        ("StatefulSet Parallel maxUnavailable 1", sts(false, 1, 0)),
    ];
    for replicas in [MAX_REPLICAS, i32::MAX] {
        for (name, controller) in &controllers {
            let started = std::time::Instant::now();
            let timeline = simulate(&scenario(replicas, controller.clone(), 5, 30));
            let elapsed = started.elapsed();
            println!(
                "{replicas} replicas {name}: {} pods, {} samples, end {}s, {:.3}s",
                timeline.pods.len(),
                timeline.samples.len(),
                timeline.end(),
                elapsed.as_secs_f64()
            );
            assert_eq!(timeline.scenario.replicas, replicas);
            assert_eq!(timeline.scenario.simulated_replicas(), MAX_REPLICAS);
            let old = timeline.pods.iter().filter(|p| !p.new).count();
            assert_eq!(old, MAX_REPLICAS as usize, "{name}");
            assert!(timeline.end() <= HORIZON_SECONDS, "{name}");
            // Never more than replicas + surge pods are running.
            let first = timeline.samples[0];
            assert!(first.old.current + first.new.current <= MAX_REPLICAS + 1 + MAX_REPLICAS / 4);
        }
    }
}
