//! A discrete-time (1 s) model of how the Deployment and StatefulSet
//! controllers roll pods, written from their source so rollguard's rules can
//! be checked against what a cluster really does. Pure and deterministic.
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

/// One rollout to simulate: the old revision is running and available at t=0,
/// when the new revision is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub replicas: i32,
    pub controller: Controller,
    pub min_ready_seconds: u32,
    /// Seconds from a pod's creation to Ready (start-up plus probes).
    pub ready_after: u32,
    /// Seconds a stopped pod keeps terminating (preStop plus the app's shutdown: its flush).
    pub shutdown: u32,
    /// The new revision never becomes Ready (a broken release).
    pub new_never_ready: bool,
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
    fn active(&self) -> bool {
        self.terminating_since.is_none() && self.gone_at.is_none()
    }
    /// Ready for minReadySeconds. Old pods have been available since
    /// long before the rollout.
    fn available(&self, t: u32, min_ready: u32) -> bool {
        let wait = if self.new { min_ready } else { 0 };
        self.active() && self.ready_at.is_some_and(|r| t >= r + wait)
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
    /// When the last old pod was gone and every new pod available; None if never.
    pub finished_at: Option<u32>,
}

impl Figures {
    /// Whether the service had no Ready pod at some second.
    pub fn outage(&self) -> bool {
        self.min_ready == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub scenario: Scenario,
    pub pods: Vec<Pod>,
    /// One sample a second, from 0 to `end`.
    pub samples: Vec<Sample>,
    pub figures: Figures,
}

impl Timeline {
    pub fn end(&self) -> u32 {
        self.samples.last().map_or(0, |s| s.t)
    }
}

/// Longest rollout simulated; a rollout still moving then is reported unfinished.
pub const HORIZON_SECONDS: u32 = 6 * 3600;

struct World {
    scenario: Scenario,
    pods: Vec<Pod>,
    /// ReplicaSet spec.replicas (Deployment) or unused (StatefulSet).
    old_desired: i32,
    new_desired: i32,
    t: u32,
}

impl World {
    fn revision(&self, new: bool) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(move |p| p.new == new)
    }
    fn active_count(&self, new: bool) -> i32 {
        self.revision(new).filter(|p| p.active()).count() as i32
    }
    fn available_count(&self, new: bool) -> i32 {
        let (t, m) = (self.t, self.scenario.min_ready_seconds);
        self.revision(new).filter(|p| p.available(t, m)).count() as i32
    }
    fn create(&mut self, new: bool, ordinal: Option<i32>) {
        let ready_at =
            (!(new && self.scenario.new_never_ready)).then(|| self.t + self.scenario.ready_after);
        self.pods.push(Pod {
            new,
            ordinal,
            created: self.t,
            ready_at,
            terminating_since: None,
            gone_at: None,
        });
    }
    fn stop(&mut self, index: usize) {
        let t = self.t;
        let pod = &mut self.pods[index];
        pod.terminating_since = Some(t);
        pod.gone_at = Some(t + self.scenario.shutdown.max(1));
    }
    fn terminating(&self, index: usize) -> bool {
        self.pods[index].terminating_since.is_some() && self.pods[index].gone_at > Some(self.t)
    }

    /// The ReplicaSet controller (`manageReplicas`): creates or deletes active
    /// pods to match spec.replicas, deleting not-ready pods first, then the
    /// youngest (`ActivePodsWithRanks`, simplified).
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
        let t = self.t;
        let mut victims: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].new == new && self.pods[i].active())
            .collect();
        victims.sort_by_key(|&i| {
            let p = &self.pods[i];
            (
                p.ready_at.is_some_and(|r| t >= r),
                std::cmp::Reverse(p.created),
                std::cmp::Reverse(i),
            )
        });
        let excess = (active - desired).max(0) as usize;
        for &i in victims.iter().take(excess) {
            self.stop(i);
        }
        active != desired
    }

    /// `rolloutRolling`: `reconcileNewReplicaSet`, then `reconcileOldReplicaSets`.
    fn sync_rolling(&mut self, surge: i32, unavailable: i32) -> bool {
        let replicas = self.scenario.replicas;
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
        let old_running = self
            .revision(false)
            .any(|p| p.gone_at.is_none_or(|g| g > self.t));
        if !old_running && self.new_desired != self.scenario.replicas {
            self.new_desired = self.scenario.replicas;
            return true;
        }
        false
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
        let (t, m) = (self.t, self.scenario.min_ready_seconds);
        let mut changed = false;
        let current = |w: &World, ordinal: i32| {
            w.pods
                .iter()
                .rposition(|p| p.ordinal == Some(ordinal) && p.gone_at.is_none_or(|g| g > t))
        };
        for ordinal in 0..self.scenario.replicas {
            match current(self, ordinal) {
                None => {
                    self.create(ordinal >= partition && !on_delete, Some(ordinal));
                    changed = true;
                    if ordered {
                        return true;
                    }
                }
                Some(i) if ordered && (self.terminating(i) || !self.pods[i].available(t, m)) => {
                    return changed;
                }
                Some(_) => {}
            }
        }
        if on_delete {
            return changed;
        }
        let mut unavailable = (0..self.scenario.replicas)
            .filter(|&o| current(self, o).is_none_or(|i| !self.pods[i].available(t, m)))
            .count() as i32;
        for ordinal in (partition.max(0)..self.scenario.replicas).rev() {
            if unavailable >= max_unavailable {
                break;
            }
            let Some(i) = current(self, ordinal) else {
                continue;
            };
            if !self.pods[i].new && self.pods[i].active() {
                self.stop(i);
                unavailable += 1;
                changed = true;
            }
        }
        changed
    }

    /// Runs every controller until none has anything left to do this second.
    fn step(&mut self) {
        for _ in 0..64 {
            let changed = match self.scenario.controller.clone() {
                Controller::Rolling {
                    max_surge,
                    max_unavailable,
                } => {
                    let f = k8s::resolve_fenceposts(
                        &max_surge,
                        &max_unavailable,
                        self.scenario.replicas,
                    )
                    .unwrap_or(k8s::Fenceposts {
                        surge: 0,
                        unavailable: 1,
                        both_zero: false,
                    });
                    self.sync_rolling(f.surge, f.effective_unavailable())
                }
                Controller::Recreate => self.sync_recreate(),
                Controller::StatefulSet {
                    ordered,
                    max_unavailable,
                    partition,
                    on_delete,
                } => self.sync_stateful_set(ordered, max_unavailable.max(1), partition, on_delete),
            };
            let is_deployment = !matches!(self.scenario.controller, Controller::StatefulSet { .. });
            let synced =
                is_deployment && (self.sync_replica_set(false) | self.sync_replica_set(true));
            if !changed && !synced {
                break;
            }
        }
    }

    fn sample(&self) -> Sample {
        let counts = |new: bool, desired: i32| {
            let mut c = Counts {
                desired,
                ..Counts::default()
            };
            for p in self.revision(new) {
                match p.state_at(self.t) {
                    Some(PodState::Terminating) => c.terminating += 1,
                    Some(PodState::Ready) => {
                        c.current += 1;
                        c.ready += 1;
                    }
                    Some(PodState::Warming) => c.current += 1,
                    None => {}
                }
            }
            c
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
                    old: counts(false, self.scenario.replicas - new),
                    new: counts(true, new),
                }
            }
            _ => Sample {
                t: self.t,
                old: counts(false, self.old_desired),
                new: counts(true, self.new_desired),
            },
        }
    }

    /// Nothing can change any more: no pod is warming up, becoming
    /// available or terminating, and the controllers are idle.
    fn settled(&self) -> bool {
        let (t, m) = (self.t, self.scenario.min_ready_seconds);
        self.pods.iter().all(|p| {
            let terminating = p.gone_at.is_some_and(|g| g > t);
            let pending = p.active() && p.new && p.ready_at.is_some_and(|r| r + m > t);
            !terminating && !pending
        })
    }

    fn finished(&self) -> bool {
        let (t, m) = (self.t, self.scenario.min_ready_seconds);
        let want_new = match &self.scenario.controller {
            Controller::StatefulSet {
                on_delete: true, ..
            } => return false,
            Controller::StatefulSet { partition, .. } => {
                (self.scenario.replicas - (*partition).max(0)).max(0)
            }
            _ => self.scenario.replicas,
        };
        let want_old = self.scenario.replicas - want_new;
        let old_alive = self
            .revision(false)
            .filter(|p| p.gone_at.is_none_or(|g| g > t))
            .count() as i32;
        let new_ok = self.revision(true).filter(|p| p.available(t, m)).count() as i32;
        old_alive == want_old && new_ok == want_new
    }
}

/// Simulates one rollout from its first second until it settles (or the horizon).
pub fn simulate(scenario: &Scenario) -> Timeline {
    let replicas = scenario.replicas.max(0);
    let scenario = Scenario {
        replicas,
        ..scenario.clone()
    };
    let mut world = World {
        pods: (0..replicas)
            .map(|i| Pod {
                new: false,
                ordinal: matches!(scenario.controller, Controller::StatefulSet { .. }).then_some(i),
                created: 0,
                ready_at: Some(0),
                terminating_since: None,
                gone_at: None,
            })
            .collect(),
        old_desired: replicas,
        new_desired: 0,
        t: 0,
        scenario,
    };
    let mut samples = Vec::new();
    let mut finished_at = None;
    loop {
        world.step();
        samples.push(world.sample());
        if finished_at.is_none() && world.finished() {
            finished_at = Some(world.t);
        }
        if (world.settled() && world.t > 0) || world.t >= HORIZON_SECONDS {
            break;
        }
        world.t += 1;
    }
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
        finished_at,
    };
    Timeline {
        scenario: world.scenario,
        pods: world.pods,
        samples,
        figures,
    }
}
