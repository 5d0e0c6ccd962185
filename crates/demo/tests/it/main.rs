//! The reference service on the real `zdd-demo` binary, in one test binary: its endpoints and
//! warm-up (`service`), and the SIGTERM drain sequence (`drain`).

mod drain;
mod service;
mod support;
