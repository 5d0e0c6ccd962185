//! The `zdd-demo` binary: the reference service, configured by its environment.

fn main() -> std::process::ExitCode {
    zdd_demo::main_from_env()
}
