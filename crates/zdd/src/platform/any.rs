//! The platform chosen on the command line, so a command runs a rollout with one call whatever
//! the platform (the [`Platform`] trait is generic, not a trait object).

use std::sync::Arc;
use std::time::Duration;

use super::kubernetes::KubernetesPlatform;
use super::local::LocalPlatform;
use super::{MirrorCounters, NodeMaintenance, Platform, Result, TrafficAccess};
use crate::model::{MirrorStats, PlatformStatus, Routing, VersionStatus, VersionTemplate};

pub enum AnyPlatform {
    Local(LocalPlatform),
    Kubernetes(Box<KubernetesPlatform>),
}

/// Calls the same method on whichever platform it is.
macro_rules! each {
    ($self:expr, $platform:ident => $call:expr) => {
        match $self {
            AnyPlatform::Local($platform) => $call,
            AnyPlatform::Kubernetes($platform) => $call,
        }
    };
}

impl Platform for AnyPlatform {
    async fn scale(&mut self, version: &VersionTemplate, replicas: u32) -> Result<()> {
        each!(self, p => p.scale(version, replicas).await)
    }

    async fn wait_ready(
        &mut self,
        version: &str,
        ready: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        each!(self, p => p.wait_ready(version, ready, timeout).await)
    }

    async fn wait_running_at_most(
        &mut self,
        version: &str,
        running: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        each!(self, p => p.wait_running_at_most(version, running, timeout).await)
    }

    async fn set_routing(&mut self, routing: &Routing) -> Result<()> {
        each!(self, p => p.set_routing(routing).await)
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        each!(self, p => p.status().await)
    }

    fn main_url(&self) -> String {
        each!(self, p => p.main_url())
    }

    fn traffic_access(&self) -> TrafficAccess {
        each!(self, p => p.traffic_access())
    }

    async fn mirror_stats(&mut self) -> Result<Vec<MirrorStats>> {
        each!(self, p => p.mirror_stats().await)
    }

    fn mirror_counters(&self) -> Option<Arc<dyn MirrorCounters>> {
        each!(self, p => p.mirror_counters())
    }

    fn preview_url(&self) -> Option<String> {
        each!(self, p => p.preview_url())
    }

    fn nodes(&self) -> Arc<dyn NodeMaintenance> {
        each!(self, p => p.nodes())
    }

    async fn shutdown(&mut self) -> Result<()> {
        each!(self, p => p.shutdown().await)
    }
}
