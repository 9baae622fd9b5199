//! A discrete-time (1 s) model of how the Deployment and StatefulSet
//! controllers roll pods, written from their source so rollguard's rules can
//! be checked against what a cluster really does. Pure and deterministic; it
//! steps from one event (a pod Ready, available or gone) to the next, and a
//! stopped pod terminates for its shutdown time cut at the grace period (the
//! kubelet kills it then).
//!
//! Deployment: `pkg/controller/deployment/rolling.go` (`rolloutRolling`,
//! `reconcileNewReplicaSet`, `reconcileOldReplicaSets`,
//! `cleanupUnhealthyReplicas`, `scaleDownOldReplicaSetsForRollingUpdate`),
//! `recreate.go` (`rolloutRecreate`), `util/deployment_util.go`
//! (`NewRSNewReplicas`, `ResolveFenceposts`). The controller sums ReplicaSet
//! `spec.replicas`, and a ReplicaSet's status counts only active pods: a
//! terminating pod is already gone for it, which is why a 0/1 rollout can have
//! every old pod terminating at once.
//!
//! StatefulSet: `pkg/controller/statefulset/stateful_set_control.go`
//! (`updateStatefulSet`, `updateStatefulSetAfterInvariantEstablished`).

use std::collections::{BTreeSet, VecDeque};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::k8s_semantics as k8s;

/// How the controller replaces pods.
#[derive(Debug, Clone, PartialEq)]
pub enum Controller {
    /// A Deployment with `strategy.type: RollingUpdate`.
    Rolling {
        max_surge: IntOrString,
        max_unavailable: IntOrString,
    },
    /// A Deployment with `strategy.type: Recreate`.
    Recreate,
    /// A StatefulSet.
    StatefulSet {
        /// `podManagementPolicy: OrderedReady` (the default) rather than Parallel.
        ordered: bool,
        /// `updateStrategy.rollingUpdate.maxUnavailable`, resolved (>= 1).
        max_unavailable: i32,
        /// `updateStrategy.rollingUpdate.partition`: ordinals below it keep the old revision.
        partition: i32,
        /// `updateStrategy.type: OnDelete`: nothing is replaced until someone deletes pods.
        on_delete: bool,
    },
}

/// Most replicas simulated: beyond this the timeline only grows, the
/// figures do not change shape, and a run must stay fast.
pub const MAX_REPLICAS: i32 = 10_000;

/// One rollout to simulate: the old revision is running and available at t=0,
/// when the new revision is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// As written; [`Scenario::simulated_replicas`] are rolled.
    pub replicas: i32,
    pub controller: Controller,
    pub min_ready_seconds: u32,
    /// Seconds from a pod's creation to Ready (start-up plus probes).
    pub ready_after: u32,
    /// Seconds a stopped pod needs to terminate cleanly (preStop plus the
    /// app's shutdown: its flush).
    pub shutdown: u32,
    /// `terminationGracePeriodSeconds`: the kubelet kills a pod still
    /// terminating then, whatever its shutdown needs.
    pub grace_period: u32,
    /// The new revision never becomes Ready (a broken release).
    pub new_never_ready: bool,
    /// `spec.paused` on a Deployment: the controller rolls nothing.
    pub paused: bool,
}

impl Scenario {
    /// Seconds a stopped pod really terminates: its shutdown, cut at the
    /// grace period (at least 1 s: deletion is never instantaneous).
    pub fn terminating_seconds(&self) -> u32 {
        self.shutdown.min(self.grace_period).max(1)
    }

    /// The kubelet kills every stopped pod before its shutdown is over.
    pub fn shutdown_cut_short(&self) -> bool {
        self.shutdown > self.grace_period
    }

    /// The replicas the model rolls: those written, at most [`MAX_REPLICAS`].
    pub fn simulated_replicas(&self) -> i32 {
        self.replicas.clamp(0, MAX_REPLICAS)
    }
}

/// One pod's life, in seconds from the start of the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub new: bool,
    /// StatefulSet ordinal.
    pub ordinal: Option<i32>,
    /// Creation time; old pods exist from before the rollout (0).
    pub created: u32,
    pub ready_at: Option<u32>,
    pub terminating_since: Option<u32>,
    pub gone_at: Option<u32>,
}

/// What a pod is doing at one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    Warming,
    Ready,
    Terminating,
}

impl Pod {
    pub fn state_at(&self, t: u32) -> Option<PodState> {
        if t < self.created || self.gone_at.is_some_and(|g| t >= g) {
            return None;
        }
        if self.terminating_since.is_some_and(|s| t >= s) {
            return Some(PodState::Terminating);
        }
        match self.ready_at {
            Some(r) if t >= r => Some(PodState::Ready),
            _ => Some(PodState::Warming),
        }
    }
}

/// Per revision, as `kubectl get rs` shows it, plus pods still terminating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub terminating: i32,
}

/// The state after the controllers acted in second `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub t: u32,
    pub old: Counts,
    pub new: Counts,
}

/// The figures that matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Fewest Ready (serving) pods at any second.
    pub min_ready: i32,
    /// Most pods at once, terminating ones included.
    pub max_pods: i32,
    /// Most pods terminating (flushing) at once.
    pub max_terminating: i32,
    /// Stopped pods the kubelet killed at the grace period, before their
    /// shutdown (their flush) was over.
    pub cut_short: i32,
    /// When the last old pod was gone and every new pod available; None if never.
    pub finished_at: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// As given (replicas as written).
    pub scenario: Scenario,
    pub pods: Vec<Pod>,
    /// One sample at every second in which something happened (a pod
    /// created, Ready, available, stopped or gone), from 0 to `end`:
    /// nothing changes in between.
    pub samples: Vec<Sample>,
    pub figures: Figures,
}

impl Timeline {
    pub fn end(&self) -> u32 {
        self.samples.last().map_or(0, |s| s.t)
    }

    /// The service had pods and, at some second, none of them was Ready.
    pub fn outage(&self) -> bool {
        self.scenario.simulated_replicas() > 0 && self.figures.min_ready == 0
    }

    /// Every simulated pod is still there at the end: a paused Deployment,
    /// or a StatefulSet with OnDelete.
    pub fn rolls_nothing(&self) -> bool {
        let on_delete = matches!(
            self.scenario.controller,
            Controller::StatefulSet {
                on_delete: true,
                ..
            }
        );
        let paused = self.scenario.paused && !is_stateful_set(&self.scenario.controller);
        on_delete || paused
    }
}

/// Longest rollout simulated; a rollout still moving then is reported unfinished.
pub const HORIZON_SECONDS: u32 = 6 * 3600;

fn is_stateful_set(controller: &Controller) -> bool {
    matches!(controller, Controller::StatefulSet { .. })
}

/// Index of a revision in the per-revision lists.
fn rev(new: bool) -> usize {
    usize::from(new)
}

struct World {
    /// Replicas capped at [`MAX_REPLICAS`].
    scenario: Scenario,
    pods: Vec<Pod>,
    /// Per revision (old, new): the indices of its active pods, oldest first.
    /// Every pod of a revision becomes Ready the same time after its
    /// creation, so the Ready (and the available) ones are a prefix: counts
    /// are binary searches, and the youngest (never Ready before an older
    /// one) is the last.
    active: [Vec<usize>; 2],
    /// Per revision: the terminating pods in the order they were stopped,
    /// which is the order they are gone (each terminates equally long).
    terminating: [VecDeque<usize>; 2],
    /// StatefulSet: the newest pod of each ordinal.
    by_ordinal: Vec<Option<usize>>,
    /// StatefulSet: ordinals whose pod is gone and not yet recreated.
    missing: BTreeSet<i32>,
    /// StatefulSet: ordinals whose pod is of the old revision and active.
    old_active: BTreeSet<i32>,
    /// ReplicaSet spec.replicas (Deployment) or unused (StatefulSet).
    old_desired: i64,
    new_desired: i64,
    t: u32,
}

impl World {
    fn active_count(&self, new: bool) -> i64 {
        self.active[rev(new)].len() as i64
    }
    /// Active pods Ready for `wait` seconds.
    fn ready_for(&self, new: bool, wait: u32) -> usize {
        let t = self.t;
        self.active[rev(new)].partition_point(|&i| {
            self.pods[i]
                .ready_at
                .is_some_and(|r| t >= r.saturating_add(wait))
        })
    }
    /// Ready for minReadySeconds. Old pods have been available since long
    /// before the rollout.
    fn available_count(&self, new: bool) -> i64 {
        let wait = if new {
            self.scenario.min_ready_seconds
        } else {
            0
        };
        self.ready_for(new, wait) as i64
    }
    fn create(&mut self, new: bool, ordinal: Option<i32>) {
        let ready_at = (!(new && self.scenario.new_never_ready))
            .then(|| self.t.saturating_add(self.scenario.ready_after));
        let index = self.pods.len();
        self.pods.push(Pod {
            new,
            ordinal,
            created: self.t,
            ready_at,
            terminating_since: None,
            gone_at: None,
        });
        self.active[rev(new)].push(index);
        if let Some(o) = ordinal {
            if let Some(slot) = self.by_ordinal.get_mut(o as usize) {
                *slot = Some(index);
            }
            self.missing.remove(&o);
            if !new {
                self.old_active.insert(o);
            }
        }
    }
    fn stop(&mut self, index: usize) {
        let t = self.t;
        let seconds = self.scenario.terminating_seconds();
        let pod = &mut self.pods[index];
        if let (Some(o), false) = (pod.ordinal, pod.new) {
            self.old_active.remove(&o);
        }
        pod.terminating_since = Some(t);
        pod.gone_at = Some(t.saturating_add(seconds));
        let active = &mut self.active[rev(pod.new)];
        if let Some(at) = active.iter().rposition(|&i| i == index) {
            active.remove(at);
        }
        self.terminating[rev(pod.new)].push_back(index);
    }
    /// Forgets the terminating pods that are gone by now.
    fn expire(&mut self) {
        for queue in &mut self.terminating {
            while let Some(&i) = queue
                .front()
                .filter(|&&i| self.pods[i].gone_at.is_some_and(|g| g <= self.t))
            {
                queue.pop_front();
                let pod = &self.pods[i];
                let newest = pod
                    .ordinal
                    .and_then(|o| self.by_ordinal.get(o as usize).copied());
                if let (Some(o), Some(Some(n))) = (pod.ordinal, newest) {
                    if n == i {
                        self.missing.insert(o);
                    }
                }
            }
        }
    }

    /// The ReplicaSet controller (`manageReplicas`): creates or deletes active
    /// pods to match spec.replicas, deleting not-ready pods first, then the
    /// youngest (`ActivePodsWithRanks`, simplified): both are the last ones.
    fn sync_replica_set(&mut self, new: bool) -> bool {
        let desired = if new {
            self.new_desired
        } else {
            self.old_desired
        };
        let active = self.active_count(new);
        for _ in active..desired {
            self.create(new, None);
        }
        for _ in desired.max(0)..active {
            if let Some(&youngest) = self.active[rev(new)].last() {
                self.stop(youngest);
            }
        }
        active != desired
    }

    /// `rolloutRolling`: `reconcileNewReplicaSet`, then `reconcileOldReplicaSets`.
    /// In i64: maxSurge and maxUnavailable may be anything up to i32::MAX.
    fn sync_rolling(&mut self, surge: i64, unavailable: i64) -> bool {
        let replicas = i64::from(self.scenario.replicas);
        let mut changed = false;
        // NewRSNewReplicas: room under replicas + maxSurge, counted on spec.replicas.
        let max_total = replicas + surge;
        let current = self.old_desired + self.new_desired;
        if self.new_desired < replicas && current < max_total {
            let up = (max_total - current).min(replicas - self.new_desired);
            self.new_desired += up;
            changed = true;
        }
        if self.old_desired == 0 {
            return changed;
        }
        let all = self.old_desired + self.new_desired;
        let min_available = replicas - unavailable;
        let new_unavailable = self.new_desired - self.available_count(true);
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return changed;
        }
        // cleanupUnhealthyReplicas: old pods that are not available go first.
        let old_unhealthy = self.old_desired - self.available_count(false);
        let cleaned = old_unhealthy.clamp(0, max_scaled_down);
        if cleaned > 0 {
            self.old_desired -= cleaned;
            changed = true;
        }
        // scaleDownOldReplicaSetsForRollingUpdate: keep minAvailable available.
        let available = self.available_count(false) + self.available_count(true);
        if available > min_available {
            let down = (available - min_available).min(self.old_desired);
            if down > 0 {
                self.old_desired -= down;
                changed = true;
            }
        }
        changed
    }

    /// `rolloutRecreate`: old to 0, wait until no old pod runs, then new to replicas.
    fn sync_recreate(&mut self) -> bool {
        if self.old_desired > 0 {
            self.old_desired = 0;
            return true;
        }
        let old_running = !self.active[0].is_empty() || !self.terminating[0].is_empty();
        let replicas = i64::from(self.scenario.replicas);
        if !old_running && self.new_desired != replicas {
            self.new_desired = replicas;
            return true;
        }
        false
    }

    /// The pod of `ordinal` that exists now (terminating or not).
    fn current(&self, ordinal: i32) -> Option<usize> {
        let index = (*self.by_ordinal.get(ordinal as usize)?)?;
        self.pods[index]
            .gone_at
            .is_none_or(|g| g > self.t)
            .then_some(index)
    }

    /// `updateStatefulSet`: create missing ordinals (in order, waiting for
    /// each under OrderedReady), then delete outdated pods from the highest
    /// ordinal down while fewer than maxUnavailable pods are unavailable.
    fn sync_stateful_set(
        &mut self,
        ordered: bool,
        max_unavailable: i32,
        partition: i32,
        on_delete: bool,
    ) -> bool {
        let mut changed = false;
        if ordered {
            // The lowest ordinal that is missing, terminating or not yet
            // available: OrderedReady creates it or waits for it.
            match self.first_not_available() {
                Some((ordinal, true)) => {
                    self.create(ordinal >= partition && !on_delete, Some(ordinal));
                    return true;
                }
                Some((_, false)) => return false,
                None => {}
            }
        } else {
            let missing: Vec<i32> = std::mem::take(&mut self.missing).into_iter().collect();
            for &ordinal in &missing {
                self.create(ordinal >= partition && !on_delete, Some(ordinal));
            }
            changed = !missing.is_empty();
        }
        if on_delete {
            return changed;
        }
        // Every ordinal has at most one active pod: the others are unavailable.
        let mut unavailable = i64::from(self.scenario.replicas)
            - self.available_count(false)
            - self.available_count(true);
        // Outdated pods go from the highest ordinal down.
        while unavailable < i64::from(max_unavailable) {
            let highest = self.old_active.range(partition.max(0)..).next_back();
            let Some(i) = highest.and_then(|&o| self.current(o)) else {
                break;
            };
            self.stop(i);
            unavailable += 1;
            changed = true;
        }
        changed
    }

    /// The lowest ordinal without an available pod, and whether it has no
    /// pod at all.
    fn first_not_available(&self) -> Option<(i32, bool)> {
        let missing = self.missing.first().map(|&o| (o, true));
        let terminating = self.terminating.iter().flatten();
        let unavailable = [false, true].into_iter().flat_map(|new| {
            let wait = if new {
                self.scenario.min_ready_seconds
            } else {
                0
            };
            self.active[rev(new)][self.ready_for(new, wait)..].iter()
        });
        let waiting = terminating
            .chain(unavailable)
            .filter_map(|&i| self.pods[i].ordinal)
            .min()
            .map(|o| (o, false));
        match (missing, waiting) {
            (Some(m), Some(w)) => Some(if m.0 < w.0 { m } else { w }),
            (m, w) => m.or(w),
        }
    }

    /// Runs every controller until none has anything left to do this
    /// second; false if they were still busy after the last round.
    fn step(&mut self) -> bool {
        let fenceposts = match &self.scenario.controller {
            Controller::Rolling {
                max_surge,
                max_unavailable,
            } => Some(
                k8s::resolve_fenceposts(max_surge, max_unavailable, self.scenario.replicas)
                    .unwrap_or(k8s::Fenceposts {
                        surge: 0,
                        unavailable: 1,
                        both_zero: false,
                    }),
            ),
            _ => None,
        };
        let is_deployment = !is_stateful_set(&self.scenario.controller);
        if is_deployment && self.scenario.paused {
            return true;
        }
        for _ in 0..64 {
            let changed = match self.scenario.controller.clone() {
                Controller::Rolling { .. } => {
                    let f = fenceposts.expect("resolved for Rolling");
                    self.sync_rolling(f.surge.into(), f.effective_unavailable().into())
                }
                Controller::Recreate => self.sync_recreate(),
                Controller::StatefulSet {
                    ordered,
                    max_unavailable,
                    partition,
                    on_delete,
                } => self.sync_stateful_set(ordered, max_unavailable.max(1), partition, on_delete),
            };
            let synced =
                is_deployment && (self.sync_replica_set(false) | self.sync_replica_set(true));
            if !changed && !synced {
                return true;
            }
        }
        false
    }

    fn sample(&self) -> Sample {
        let counts = |new: bool, desired: i64| Counts {
            desired: i32::try_from(desired).unwrap_or(i32::MAX),
            current: self.active[rev(new)].len() as i32,
            ready: self.ready_for(new, 0) as i32,
            terminating: self.terminating[rev(new)].len() as i32,
        };
        match &self.scenario.controller {
            Controller::StatefulSet {
                partition,
                on_delete,
                ..
            } => {
                let new = if *on_delete {
                    0
                } else {
                    (self.scenario.replicas - (*partition).max(0)).max(0)
                };
                Sample {
                    t: self.t,
                    old: counts(false, (self.scenario.replicas - new).into()),
                    new: counts(true, new.into()),
                }
            }
            _ => Sample {
                t: self.t,
                old: counts(false, self.old_desired),
                new: counts(true, self.new_desired),
            },
        }
    }

    /// The next second after now at which a pod becomes Ready, available or
    /// gone: until then the controllers have nothing new to act on.
    fn next_event(&self) -> Option<u32> {
        let t = self.t;
        let mut next: Option<u32> = None;
        let mut consider = |at: Option<u32>| {
            if let Some(at) = at.filter(|&at| at > t) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for new in [false, true] {
            let active = &self.active[rev(new)];
            let ready_at = |i: usize| active.get(i).and_then(|&p| self.pods[p].ready_at);
            consider(ready_at(self.ready_for(new, 0)));
            if new {
                let m = self.scenario.min_ready_seconds;
                consider(ready_at(self.ready_for(new, m)).map(|r| r.saturating_add(m)));
            }
            let queue = &self.terminating[rev(new)];
            consider(queue.front().and_then(|&p| self.pods[p].gone_at));
        }
        next
    }

    /// Nothing can change any more: no pod is warming up, becoming
    /// available or terminating, and the controllers are idle.
    fn settled(&self) -> bool {
        self.next_event().is_none()
    }

    fn finished(&self) -> bool {
        let want_new = match &self.scenario.controller {
            Controller::StatefulSet {
                on_delete: true, ..
            } => return false,
            Controller::StatefulSet { partition, .. } => {
                (self.scenario.replicas - (*partition).max(0)).max(0)
            }
            _ if self.scenario.paused => return false,
            _ => self.scenario.replicas,
        };
        let want_old = i64::from(self.scenario.replicas - want_new);
        let old_alive = (self.active[0].len() + self.terminating[0].len()) as i64;
        old_alive == want_old && self.available_count(true) == i64::from(want_new)
    }
}

/// Simulates one rollout from its first second until it settles (or the
/// horizon), stepping from one event to the next: a run costs about
/// (events x log pods), so the largest allowed rollout stays fast.
pub fn simulate(scenario: &Scenario) -> Timeline {
    let replicas = scenario.simulated_replicas();
    let capped = Scenario {
        replicas,
        ..scenario.clone()
    };
    let stateful_set = is_stateful_set(&capped.controller);
    let mut world = World {
        pods: (0..replicas)
            .map(|i| Pod {
                new: false,
                ordinal: stateful_set.then_some(i),
                created: 0,
                ready_at: Some(0),
                terminating_since: None,
                gone_at: None,
            })
            .collect(),
        active: [(0..replicas as usize).collect(), Vec::new()],
        terminating: Default::default(),
        by_ordinal: if stateful_set {
            (0..replicas as usize).map(Some).collect()
        } else {
            Vec::new()
        },
        missing: BTreeSet::new(),
        old_active: if stateful_set {
            (0..replicas).collect()
        } else {
            BTreeSet::new()
        },
        old_desired: replicas.into(),
        new_desired: 0,
        t: 0,
        scenario: capped,
    };
    let mut samples = Vec::new();
    let mut finished_at = None;
    loop {
        world.expire();
        let idle = world.step();
        samples.push(world.sample());
        if finished_at.is_none() && world.finished() {
            finished_at = Some(world.t);
        }
        if (idle && world.settled() && world.t > 0) || world.t >= HORIZON_SECONDS {
            break;
        }
        let next = if idle { world.next_event() } else { None };
        world.t = next
            .unwrap_or(world.t + 1)
            .clamp(world.t + 1, HORIZON_SECONDS);
    }
    let cut_short = if world.scenario.shutdown_cut_short() {
        world
            .pods
            .iter()
            .filter(|p| p.terminating_since.is_some())
            .count() as i32
    } else {
        0
    };
    let figures = Figures {
        min_ready: samples
            .iter()
            .map(|s| s.old.ready + s.new.ready)
            .min()
            .unwrap_or(0),
        max_pods: samples
            .iter()
            .map(|s| s.old.current + s.old.terminating + s.new.current + s.new.terminating)
            .max()
            .unwrap_or(0),
        max_terminating: samples
            .iter()
            .map(|s| s.old.terminating + s.new.terminating)
            .max()
            .unwrap_or(0),
        cut_short,
        finished_at,
    };
    Timeline {
        scenario: scenario.clone(),
        pods: world.pods,
        samples,
        figures,
    }
}
