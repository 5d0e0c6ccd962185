//! The strategy engine: runs a strategy's steps on a platform, records events, checks the data plane.

pub mod events;
