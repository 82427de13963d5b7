//! `campaign serve`: a campaign's model behind an OpenAI-compatible API, so
//! that a served stack can be measured against the in-process one.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{CommandError, exit, load_named_model};
use crate::campaign::Campaign;
use crate::components::server::{ServeOptions, Server};
use crate::output::OutputLayout;

pub struct ServeArgs {
    pub model: String,
    pub addr: SocketAddr,
    /// Where each request is logged (default: `serve_requests.jsonl` in the
    /// campaign's results folder).
    pub request_log: Option<PathBuf>,
}

/// Loads the model, binds, prints `listening on http://ADDR` as the first
/// line on stdout (a script waits for it), and serves until Ctrl-C or
/// SIGTERM; requests in flight then finish. A second Ctrl-C exits at once.
pub fn serve_command(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &ServeArgs,
) -> Result<(String, u8), CommandError> {
    // The campaign's compute threads, as `run` uses them: before any
    // other thread starts (candle reads them on each matmul).
    crate::runner::configure_threads(campaign.file.settings().threads.usize());
    let (path, model) = load_named_model(campaign, layout, &args.model)?;
    let request_log = args
        .request_log
        .clone()
        .unwrap_or_else(|| layout.serve_requests());
    let server = Server::bind(
        args.addr,
        model,
        ServeOptions {
            model_name: args.model.clone(),
            request_log,
        },
    )?;
    let addr = server.local_addr()?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{addr}");
    let _ = stdout.flush();
    eprintln!(
        "serving model {:?} ({}) with {} thread(s); requests logged to {}; Ctrl-C stops",
        args.model,
        path.display(),
        campaign.file.settings().threads,
        server.request_log().display()
    );
    server.run(async {
        wait_for_stop().await;
        eprintln!("stopping: finishing the requests in flight (Ctrl-C again to quit at once)");
        tokio::spawn(async {
            wait_for_stop().await;
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
    })?;
    Ok((String::new(), exit::OK))
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send).
async fn wait_for_stop() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
