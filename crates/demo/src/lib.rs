//! The reference microservice. CONTRACT: `zdd serve` calls [`main_from_env`].

/// Reads the configuration from the environment, serves until the drain ends, and returns the
/// process exit code (0 after a clean drain).
pub fn main_from_env() -> std::process::ExitCode {
    todo!("demo owner")
}
