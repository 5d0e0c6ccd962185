//! The reference service on the real `zdd-demo` binary, in one test binary: its endpoints and
//! warm-up (`service`), fault injection and feature flags (`switches`), and the SIGTERM drain sequence
//! (`drain`).

mod drain;
mod service;
mod support;
mod switches;
