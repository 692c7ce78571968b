//! volley: one binary, one plan file, one metrics pipeline.

mod cli;
mod k8s;

fn main() -> std::process::ExitCode {
    cli::main()
}
