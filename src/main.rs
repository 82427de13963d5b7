use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    // Panics become messages: in a report when a benchmark is running,
    // else one line here; never a raw backtrace (unless RUST_BACKTRACE).
    campaign::panics::install_hook();
    let cli = cli::Cli::parse_args();
    let dispatched = std::panic::catch_unwind(move || cli.dispatch());
    match dispatched {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(error)) => {
            let report = anyhow::Error::from(error);
            eprintln!("error: {}", message_with_causes(&report));
            let code = report
                .downcast_ref::<campaign::commands::CommandError>()
                .map_or(campaign::commands::exit::INTERNAL, |e| e.exit_code());
            ExitCode::from(code)
        }
        Err(payload) => {
            eprintln!(
                "error: internal error: {}\n  help: this is a bug in campaign; results measured before it are in the results folder",
                campaign::panics::describe(payload.as_ref())
            );
            ExitCode::from(campaign::commands::exit::INTERNAL)
        }
    }
}

/// The error and each cause that its own message does not already quote
/// (most of ours name their cause inline, before a `help:` line).
fn message_with_causes(report: &anyhow::Error) -> String {
    let mut text = report.to_string();
    for cause in report.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
