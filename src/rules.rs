//! The rule table: every rule's stable name, default action, why it exists
//! and how to fix what it reports. Docs, `rollguard rules` and the engine all
//! read this one table, so they cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Change the object (mutation rules only).
    Apply,
    /// Reject the object (validation rules only).
    Deny,
    /// Admit the object and return an admission warning.
    Warn,
    /// Do not evaluate the rule at all.
    Off,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Apply, Action::Deny, Action::Warn, Action::Off];

    /// The word in configuration, `--rule`, reports and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Action::Apply => "apply",
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Off => "off",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&Action::ALL, Action::label, s).ok_or_else(|| format!(
                "unknown rule action {s:?}: accepted values are apply (mutation rules), deny (validation rules), warn, off"
            ))
    }
}

/// Whether a rule changes objects or judges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Mutation,
    Validation,
}

impl RuleKind {
    pub fn label(self) -> &'static str {
        match self {
            RuleKind::Mutation => "mutation",
            RuleKind::Validation => "validation",
        }
    }

    /// `apply` only for mutations, `deny` only for validations.
    pub fn accepts(self, action: Action) -> bool {
        !matches!(
            (self, action),
            (RuleKind::Mutation, Action::Deny) | (RuleKind::Validation, Action::Apply)
        )
    }
}

macro_rules! rules {
    ($( $variant:ident = $name:literal, $kind:ident, $action:ident,
        why: $why:literal, fix: $fix:literal, example: $example:literal; )*) => {
        /// Every rule rollguard knows, by its stable name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule { $( $variant, )* }

        impl Rule {
            /// All rules, mutations first, in documentation order.
            pub const ALL: &'static [Rule] = &[ $( Rule::$variant, )* ];

            /// The stable name used in annotations, configuration and messages.
            pub fn name(self) -> &'static str {
                match self { $( Rule::$variant => $name, )* }
            }

            pub fn kind(self) -> RuleKind {
                match self { $( Rule::$variant => RuleKind::$kind, )* }
            }

            /// The action used when the configuration does not name one.
            pub fn default_action(self) -> Action {
                match self { $( Rule::$variant => Action::$action, )* }
            }

            /// One line: the Kubernetes behaviour the rule guards against.
            pub fn why(self) -> &'static str {
                match self { $( Rule::$variant => $why, )* }
            }

            /// One line: what the user should change.
            pub fn fix(self) -> &'static str {
                match self { $( Rule::$variant => $fix, )* }
            }

            /// A short example: what fires the rule, and what rollguard does.
            pub fn example(self) -> &'static str {
                match self { $( Rule::$variant => $example, )* }
            }
        }
    };
}

rules! {
    PrestopSleep = "prestop-sleep", Mutation, Apply,
        why: "SIGTERM arrives while Services and load balancers still route to the pod, so in-flight requests fail.",
        fix: "Add a preStop sleep so endpoints are removed before the app stops; rollguard injects one into serving containers: those declaring a port other than metrics/healthz/probe ports (or declaring no ports but probed on one: httpGet, tcpSocket or grpc readiness/liveness probe), not on the skip list (by name or image), and not a helper sidecar image (kube-rbac-proxy, configmap-reload, jaeger-agent, envoy, node-driver-registrar) beside another container. DaemonSets only with rollguard.io/prestop-sleep (a sleep per node buys nothing for node agents).",
        example: "containers: [{name: web, ports: [{containerPort: 80}]}]  →  lifecycle.preStop.sleep.seconds: 10";
    ReadinessProbe = "readiness-probe", Mutation, Apply,
        why: "Without a readiness probe a pod counts as ready as soon as it starts and receives traffic it cannot serve.",
        fix: "Declare a readinessProbe; rollguard injects a tcpSocket (or httpGet with rollguard.io/readiness-path) probe on the first TCP port of each serving container (see prestop-sleep); a UDP-only container gets none, and rollguard.io/readiness-port must name a declared port.",
        example: "containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]  →  readinessProbe.tcpSocket.port: http";
    GracePeriod = "grace-period", Mutation, Apply,
        why: "A grace period that does not match the app's shutdown either kills it mid-flush or hides a missing graceful shutdown.",
        fix: "Declare rollguard.io/shutdown-timeout; rollguard sets terminationGracePeriodSeconds = preStop sleep + timeout + buffer.",
        example: "rollguard.io/shutdown-timeout: 20s, terminationGracePeriodSeconds: 400, no preStop  →  terminationGracePeriodSeconds: 25";
    SingleReplica = "single-replica", Mutation, Apply,
        why: "With one replica and maxUnavailable 1 the old pod is killed before the new one is ready: a broken image takes the service down.",
        fix: "Use maxUnavailable: 0 and maxSurge: 1 so the new pod must be available first.",
        example: "replicas: 1, maxSurge: 0, maxUnavailable: 1  →  maxSurge: 1, maxUnavailable: 0";
    StatefulSerial = "stateful-serial", Mutation, Apply,
        why: "Stateful pods flush state on exit. The controller counts a terminating pod as gone, so even 0/1 stops the next pod while the last still flushes: 3 replicas, 30 s flush, 3 flushing at once.",
        fix: "maxSurge: 0, maxUnavailable: 1 (1 replica: maxSurge: 1, maxUnavailable: 0), absolute values, and minReadySeconds >= the grace period at every replica count, progressDeadlineSeconds raised above it: one at a time at any count a scale reaches. A grace period beyond int32 cannot be covered (stateful-parallel denies). Or use a StatefulSet (docs/rollouts.md).",
        example: "rollguard.io/profile: stateful, replicas: 3, maxSurge: 25%, grace 40s  →  maxSurge: 0, maxUnavailable: 1, minReadySeconds: 40, progressDeadlineSeconds: 640";
    PullBasedSurge = "pull-based-surge", Mutation, Apply,
        why: "A queue consumer that is stopped before its replacement is available stops processing work.",
        fix: "Use maxUnavailable: 0 and maxSurge of at least 1.",
        example: "rollguard.io/profile: pull-based, maxSurge: 0, maxUnavailable: 2  →  maxSurge: 1, maxUnavailable: 0";
    Warmup = "warmup", Mutation, Apply,
        why: "Pods that need a warm-up phase take full load as soon as they are Ready and answer slowly or fail.",
        fix: "Set minReadySeconds to the warm-up (raising progressDeadlineSeconds above it, which the API server requires) and roll one new pod at a time (maxUnavailable: 0, maxSurge: 1).",
        example: "rollguard.io/warmup: 15m, minReadySeconds: 0, maxUnavailable: 25%  →  minReadySeconds: 900, progressDeadlineSeconds: 1500, maxSurge: 1, maxUnavailable: 0";
    RolloutAllUnavailable = "rollout-all-unavailable", Validation, Deny,
        why: "A RollingUpdate whose maxUnavailable covers every replica behaves like Recreate: the whole service goes down.",
        fix: "Lower maxUnavailable below spec.replicas (for one replica: maxUnavailable: 0, maxSurge: 1).",
        example: "replicas: 3, strategy.rollingUpdate.maxUnavailable: 100%";
    RolloutFencepost = "rollout-fencepost", Validation, Deny,
        why: "maxSurge and maxUnavailable both resolving to 0 make the controller silently use maxUnavailable 1.",
        fix: "Set maxSurge to at least 1 (or use an absolute maxUnavailable) so the rollout can progress as intended.",
        example: "replicas: 3, maxSurge: 0%, maxUnavailable: 25% (both round to 0)";
    StatefulRecreate = "stateful-recreate", Validation, Deny,
        why: "With Recreate every stateful replica flushes its state at the same moment, with none ready meanwhile. Not reported for 1 replica: serial and Recreate are then the same.",
        fix: "Use strategy RollingUpdate with maxSurge: 0, maxUnavailable: 1 and minReadySeconds >= terminationGracePeriodSeconds (stateful-serial writes all three).",
        example: "rollguard.io/profile: stateful, replicas: 3, strategy.type: Recreate";
    StatefulParallel = "stateful-parallel", Validation, Deny,
        why: "More than one stateful pod exiting at once flushes in parallel and overloads the downstream store; with minReadySeconds below the flush, even maxUnavailable 1 stops the next pod mid-flush. Judged as written at every replica count a scale can reach: a percentage grows with replicas.",
        fix: "Deployment: absolute maxSurge: 0, maxUnavailable: 1 (or 1/0) and minReadySeconds >= terminationGracePeriodSeconds (stateful-serial does both). StatefulSet: leave maxUnavailable unset or 1.",
        example: "rollguard.io/profile: stateful, replicas: 3, maxSurge: 0, maxUnavailable: 25% (1 now, 2 if scaled to 8); a StatefulSet with maxUnavailable: 2 or 50%";
    StatefulOnDelete = "stateful-on-delete", Validation, Warn,
        why: "A stateful StatefulSet with updateStrategy OnDelete rolls only as pods are deleted by hand: nothing keeps those deletions one at a time.",
        fix: "Use updateStrategy RollingUpdate with maxUnavailable: 1 (a partition stages the rollout), or delete pods one by one after each is Ready.",
        example: "kind: StatefulSet, rollguard.io/profile: stateful, updateStrategy.type: OnDelete";
    GraceBelowShutdown = "grace-below-shutdown", Validation, Deny,
        why: "The kubelet kills the app with SIGKILL before its declared shutdown can finish: state is lost.",
        fix: "Raise terminationGracePeriodSeconds to at least preStop sleep + rollguard.io/shutdown-timeout.",
        example: "rollguard.io/shutdown-timeout: 30s, preStop sleep 10s, terminationGracePeriodSeconds: 30";
    PrestopExceedsGrace = "prestop-exceeds-grace", Validation, Deny,
        why: "A preStop sleep as long as the grace period leaves the app no time to shut down after SIGTERM.",
        fix: "Shorten the preStop sleep or raise terminationGracePeriodSeconds above it. /mutate denies only what the API server refuses itself (a native sleep.seconds above the grace period); /validate judges the rest.",
        example: "lifecycle.preStop.exec.command: [sh, -c, sleep 60], terminationGracePeriodSeconds: 30";
    MinReadyExceedsDeadline = "min-ready-exceeds-deadline", Validation, Deny,
        why: "When minReadySeconds reaches progressDeadlineSeconds every rollout is reported as failed.",
        fix: "Raise progressDeadlineSeconds above minReadySeconds, or shorten the warm-up. Judged on /mutate too (the API server refuses such a Deployment before any validating webhook); rollguard raises the deadline whenever it raises minReadySeconds.",
        example: "minReadySeconds: 600, progressDeadlineSeconds unset (600)";
    InvalidAnnotation = "invalid-annotation", Validation, Deny,
        why: "A rollguard annotation that cannot be read would silently leave the workload unprotected.",
        fix: "Use one of the accepted values listed in the message (see docs/rules.md for the annotation contract).",
        example: "rollguard.io/profile: stateless, the key rollguard.io/shutdown-timout, or rollguard.io/readiness-port: metrics with no port named metrics";
    ReadinessMissing = "readiness-missing", Validation, Warn,
        why: "A serving container without a readiness probe receives traffic before it can serve it.",
        fix: "Add a readinessProbe to the container (rollguard injects one in enforce mode).",
        example: "containers: [{name: web, ports: [{containerPort: 80}]}] with no readinessProbe";
    ReadinessIsLiveness = "readiness-is-liveness", Validation, Warn,
        why: "With identical probes an overloaded pod is restarted instead of being taken out of rotation.",
        fix: "Make the liveness probe check only that the process is alive, and the readiness probe that it can serve.",
        example: "readinessProbe and livenessProbe both {httpGet: {path: /healthz, port: 8080}}";
    SingleReplicaHostPort = "single-replica-host-port", Validation, Warn,
        why: "A pod that binds a hostPort, or runs with hostNetwork: true (every container port then binds on the node), leaves no room for a surge pod on its node: forcing surge-first (single-replica, pull-based-surge, warmup) would hang the rollout on a one-node cluster, so rollguard keeps maxUnavailable and the pod is down while it is replaced.",
        fix: "Run 2 or more replicas (with a PodDisruptionBudget), or drop the hostPort (or hostNetwork) and expose the pod through a Service; waive this rule to accept the gap.",
        example: "replicas: 1, containers: [{ports: [{containerPort: 80, hostPort: 80}]}], maxUnavailable: 1";
}

impl Rule {
    /// Whether `action` makes sense for this rule: `apply` only for
    /// mutations, `deny` only for validations.
    pub fn accepts(self, action: Action) -> Result<(), String> {
        let kind = self.kind();
        if kind.accepts(action) {
            return Ok(());
        }
        let accepted: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| kind.accepts(*a))
            .map(Action::label)
            .collect();
        Err(format!(
            "{self} is a {} rule: accepted actions are {}",
            kind.label(),
            accepted.join(", ")
        ))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .iter()
            .copied()
            .find(|rule| rule.name() == s)
            .ok_or_else(|| format!("unknown rule {s:?}: known rules are {}", known_rule_names()))
    }
}

/// Comma-separated list of every rule name, for error messages.
pub fn known_rule_names() -> String {
    Rule::ALL
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_name_round_trips_and_is_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for rule in Rule::ALL {
            assert_eq!(rule.name().parse::<Rule>().unwrap(), *rule);
            assert!(
                seen.insert(rule.name()),
                "duplicate rule name {}",
                rule.name()
            );
        }
    }

    #[test]
    fn every_action_label_round_trips_and_config_serde_agrees() {
        for action in Action::ALL {
            assert_eq!(action.label().parse::<Action>().unwrap(), action);
            assert_eq!(action.to_string(), action.label());
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.label())
            );
        }
        assert!("Deny".parse::<Action>().is_err());
    }

    #[test]
    fn unknown_rule_name_lists_the_known_ones() {
        let err = "no-such-rule".parse::<Rule>().unwrap_err();
        assert!(
            err.contains("no-such-rule") && err.contains("prestop-sleep"),
            "{err}"
        );
    }

    #[test]
    fn mutation_rules_apply_and_validation_rules_deny() {
        for rule in Rule::ALL {
            assert!(rule.accepts(rule.default_action()).is_ok(), "{rule}");
            assert!(rule.accepts(Action::Warn).is_ok() && rule.accepts(Action::Off).is_ok());
        }
        assert!(Rule::PrestopSleep.accepts(Action::Deny).is_err());
        assert!(Rule::RolloutFencepost.accepts(Action::Apply).is_err());
    }

    #[test]
    fn only_advisory_rules_warn_by_default() {
        let warn: Vec<_> = Rule::ALL
            .iter()
            .filter(|r| r.default_action() == Action::Warn)
            .map(|r| r.name())
            .collect();
        // stateful-on-delete: OnDelete is a deliberate manual rollout;
        // single-replica-host-port explains a change rollguard chose not to make.
        assert_eq!(
            warn,
            [
                "stateful-on-delete",
                "readiness-missing",
                "readiness-is-liveness",
                "single-replica-host-port"
            ]
        );
    }
}
