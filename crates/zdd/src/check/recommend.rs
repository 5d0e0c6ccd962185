//! The preStop sleep and the grace period computed from what was measured, as the Kubernetes
//! YAML to paste into a Deployment.

use std::time::Duration;

use serde::Serialize;

use super::config::CheckConfig;
use super::measurements::{Measurements, SlowOutcome};
use super::verdicts::human;

/// Above the propagation delay, what the preStop sleep adds: routers do not all learn of a
/// removal at the same time.
const PRE_STOP_MARGIN: Duration = Duration::from_secs(1);
/// Above preStop, drain and the slowest request, what the grace period adds.
const GRACE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    pub pre_stop_seconds: u64,
    /// `None` when no grace period can be computed: the app did not exit on SIGTERM by itself.
    pub termination_grace_period_seconds: Option<u64>,
    /// How each number came about.
    pub reasons: Vec<String>,
    pub yaml: String,
}

/// `None` when the app never got to a termination.
pub fn recommend(config: &CheckConfig, m: &Measurements) -> Option<Recommendation> {
    let termination = m.termination.as_ref()?;
    let sigterm = termination.sigterm_s?;
    let propagation = config.propagation_delay.as_secs_f64();
    let needed = propagation + PRE_STOP_MARGIN.as_secs_f64();
    // An app whose requests failed after SIGTERM does not serve then, whatever it accepts.
    let traffic_failed = m.traffic.as_ref().is_some_and(|t| t.failed > 0);
    let serving = if traffic_failed {
        0.0
    } else {
        termination.accepting_after_sigterm_s().unwrap_or(0.0)
    };
    let pre_stop = (needed - serving).max(0.0).ceil() as u64;
    let mut reasons = vec![if pre_stop == 0 {
        format!(
            "preStop: none needed, the app serves {} after SIGTERM, more than the propagation \
             delay ({}) + {}",
            human(serving),
            human(propagation),
            human(PRE_STOP_MARGIN.as_secs_f64())
        )
    } else {
        format!(
            "preStop {pre_stop} s: the propagation delay ({}) + {}, less the {} the app serves \
             after SIGTERM, in whole seconds",
            human(propagation),
            human(PRE_STOP_MARGIN.as_secs_f64()),
            human(serving)
        )
    }];

    let exited_by_itself = termination.sigkill_s.is_none() && termination.exit_s.is_some();
    let grace = exited_by_itself.then(|| {
        let drain = termination.exit_s.unwrap_or(sigterm) - sigterm;
        let slow = m
            .slow
            .as_ref()
            .filter(|slow| matches!(slow.outcome, SlowOutcome::Answered { .. }))
            .map_or(0.0, |slow| slow.ended_s - sigterm);
        let longest = drain.max(slow);
        let grace = (pre_stop as f64 + longest + GRACE_MARGIN.as_secs_f64()).ceil() as u64;
        reasons.push(format!(
            "terminationGracePeriodSeconds {grace}: preStop {pre_stop} s + the {} from SIGTERM \
             to exit{} + {}, rounded up",
            human(longest),
            if slow > drain {
                " (the slow request's)"
            } else {
                ""
            },
            human(GRACE_MARGIN.as_secs_f64())
        ));
        grace
    });
    if grace.is_none() {
        reasons.push(format!(
            "terminationGracePeriodSeconds: none is long enough until the app exits on SIGTERM \
             by itself (check 7); {} kept",
            human(config.grace_period.as_secs_f64())
        ));
    }
    let yaml = yaml(
        pre_stop,
        grace.unwrap_or(config.grace_period.as_secs().max(1)),
        &reasons,
    );
    Some(Recommendation {
        pre_stop_seconds: pre_stop,
        termination_grace_period_seconds: grace,
        reasons,
        yaml,
    })
}

/// The pod template fields, under a Deployment's `spec.template.spec`.
fn yaml(pre_stop: u64, grace: u64, reasons: &[String]) -> String {
    let mut out = String::new();
    for reason in reasons {
        out.push_str(&format!("# {reason}\n"));
    }
    out.push_str(&format!(
        "spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: {grace}\n      \
         containers:\n        - name: app   # your container\n"
    ));
    if pre_stop > 0 {
        // The sleep action needs no sleep binary in the image (Kubernetes 1.30 beta, 1.34 GA).
        out.push_str(&format!(
            "          lifecycle:\n            preStop:\n              sleep:\n                \
             seconds: {pre_stop}\n"
        ));
    }
    out
}
