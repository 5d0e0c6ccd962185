//! One module per subcommand.

pub mod check;
pub mod control;
pub mod demo;
pub mod probe;
pub mod rollout;
