//! volley: one binary, one plan file, one metrics pipeline.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
