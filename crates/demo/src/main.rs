fn main() -> std::process::ExitCode {
    zdd_demo::main_from_env()
}
