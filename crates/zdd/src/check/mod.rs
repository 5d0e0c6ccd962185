//! `zdd check`: is a service safe to roll? Its lifecycle, measured on the local platform (the
//! supervisor's termination sequence, endpoints with the propagation delay, the builtin router,
//! the probe's traffic) and judged in eight checks, with the preStop sleep and grace period to
//! set (docs/check.md).
//!
//! - `config`: what to run and what to assume; `run`: the run that measures (`measurements`),
//!   watching the app through `observe` and `raw_http`;
//! - `verdicts`: the eight checks; `recommend`: preStop and grace period as YAML;
//! - `report` and `html`: the table, JSON and page.

mod config;
mod html;
mod measurements;
mod observe;
mod raw_http;
mod recommend;
mod report;
mod run;
mod verdicts;

pub use config::{CheckConfig, ProbePath};
pub use html::render_html;
pub use measurements::Measurements;
pub use recommend::Recommendation;
pub use report::{CheckReport, render_table, render_text};
pub use run::{CheckError, CheckRun, run};
pub use verdicts::{CheckResult, NAMES, Verdict};
