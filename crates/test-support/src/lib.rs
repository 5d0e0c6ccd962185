//! What the workspace's tests share, once. A dev-dependency only, and it depends on no workspace
//! crate (so any crate's tests may use it):
//! - [`http`]: a raw HTTP/1.1 client for loopback (async, and [`http::blocking`]), raw so that
//!   tests see exactly what went over the wire;
//! - [`poll`]: waiting, bounded, until a condition holds;
//! - [`upstream`]: servers to route or probe: [`upstream::TestServer`] with behaviours, and a
//!   scripted raw one for the edge cases;
//! - [`process`]: /proc (processes left behind, CPU time of named threads) and running a test in a
//!   process of its own;
//! - [`run`]: a binary run in a temporary directory, with a marker its children inherit.

pub mod http;
pub mod poll;
pub mod process;
pub mod run;
pub mod upstream;
