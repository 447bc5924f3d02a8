fn main() -> std::process::ExitCode {
    eprintln!("quantwatch-alert-router: not implemented yet");
    std::process::ExitCode::from(70)
}
