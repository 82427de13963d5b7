use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.dispatch() {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let report = anyhow::Error::from(error);
            eprintln!("error: {report:#}");
            let code = report
                .downcast_ref::<campaign::commands::CommandError>()
                .map_or(campaign::commands::exit::INTERNAL, |e| e.exit_code());
            ExitCode::from(code)
        }
    }
}
