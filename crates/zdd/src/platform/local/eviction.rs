//! The eviction API's part: may this pod be evicted now, given the app's PodDisruptionBudget?
//!
//! The same arithmetic as the disruption controller and the API server's eviction subresource:
//! - the pods the budget expects are the versions' desired replicas (for a percentage or a
//!   `maxUnavailable`); an integer `minAvailable` is the number of healthy pods needed as it is;
//! - healthy = ready and not terminating; `minAvailable` percentages round up, `maxUnavailable`
//!   percentages round up too (so fewer pods are needed);
//! - an eviction that would leave fewer healthy pods than needed is refused (HTTP 429, "Cannot
//!   evict pod as it would violate the pod's disruption budget"); the drainer retries it;
//! - a pod that is not ready may always go (`unhealthyPodEvictionPolicy: AlwaysAllow`, as in the
//!   manifests): it serves nothing.

use crate::model::{DisruptionBudget, IntOrPercent};

/// Why an eviction was refused: the budget needs `needed` healthy pods and has `healthy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub budget: DisruptionBudget,
    pub healthy: u32,
    pub needed: u32,
}

/// The healthy pods `budget` needs when the app's versions want `expected` replicas in all.
pub fn needed_healthy(budget: DisruptionBudget, expected: u32) -> u32 {
    match budget {
        DisruptionBudget::MinAvailable(IntOrPercent::Count(n)) => n,
        DisruptionBudget::MinAvailable(percent) => percent.resolve(expected, true),
        DisruptionBudget::MaxUnavailable(max) => {
            expected.saturating_sub(max.resolve(expected, true))
        }
    }
}

/// May a pod be evicted now? `pod_healthy`: the pod itself is ready; `healthy`: the app's healthy
/// pods, this one included; `expected`: the versions' desired replicas in all.
pub fn allow(
    budget: Option<DisruptionBudget>,
    pod_healthy: bool,
    healthy: u32,
    expected: u32,
) -> Result<(), Refusal> {
    let Some(budget) = budget else {
        return Ok(());
    };
    let needed = needed_healthy(budget, expected);
    if !pod_healthy || healthy > needed {
        return Ok(());
    }
    Err(Refusal {
        budget,
        healthy,
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_ONE: DisruptionBudget = DisruptionBudget::MaxUnavailable(IntOrPercent::Count(1));

    #[test]
    fn max_unavailable_one_lets_one_healthy_pod_go_at_a_time() {
        assert_eq!(allow(Some(MAX_ONE), true, 3, 3), Ok(()));
        assert_eq!(
            allow(Some(MAX_ONE), true, 2, 3),
            Err(Refusal {
                budget: MAX_ONE,
                healthy: 2,
                needed: 2
            })
        );
        // The unready replacement of the first evicted pod may go; it serves nothing.
        assert_eq!(allow(Some(MAX_ONE), false, 2, 3), Ok(()));
        assert_eq!(allow(None, true, 1, 3), Ok(()));
    }

    #[test]
    fn min_available_counts_or_percentages_as_the_disruption_controller_does() {
        let all = DisruptionBudget::MinAvailable(IntOrPercent::Count(3));
        assert!(allow(Some(all), true, 3, 3).is_err(), "a drain must block");
        let half = DisruptionBudget::MinAvailable(IntOrPercent::Percent(50));
        assert_eq!(needed_healthy(half, 3), 2);
        assert_eq!(allow(Some(half), true, 3, 3), Ok(()));
        assert!(allow(Some(half), true, 2, 3).is_err());
        let quarter = DisruptionBudget::MaxUnavailable(IntOrPercent::Percent(25));
        assert_eq!(needed_healthy(quarter, 3), 2);
    }
}
