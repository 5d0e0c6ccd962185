//! What this run changed in the cluster, oldest first, so that an error can say what it left.

use super::KubeError;
use crate::platform::PlatformError;

#[derive(Default)]
pub struct Ledger(Vec<String>);

impl Ledger {
    /// Records one change (`Deployment web-v2 scaled to 3`).
    pub fn record(&mut self, change: String) {
        self.0.push(change);
    }

    /// Turns an error into the platform's, adding what this run already changed.
    pub fn explain(&self, err: KubeError) -> PlatformError {
        if self.0.is_empty() {
            return PlatformError::Other(format!("{err}. Nothing was changed by this run."));
        }
        let recent = &self.0[self.0.len().saturating_sub(8)..];
        PlatformError::Other(format!(
            "{err}. Changed by this run so far (last {}): {}",
            recent.len(),
            recent.join("; ")
        ))
    }
}
