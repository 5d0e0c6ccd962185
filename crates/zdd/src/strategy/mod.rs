//! One file per strategy. Each turns the spec into steps on the [`crate::platform::Platform`] trait.
