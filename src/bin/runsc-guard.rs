//! `runsc-guard`: the operator's view of the memory guard (see `runsc_guard::cli`).

#![warn(clippy::too_many_lines)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // Lossy rather than a panic on a non-UTF-8 argument; the paths it takes are UTF-8 in practice.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = runsc_guard::cli::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
