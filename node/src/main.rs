//! The `qward` binary: parses the command line and hands over to `qward_node::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    qward_node::cli::main()
}
