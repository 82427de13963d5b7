//! Cooperative cancellation: Ctrl-C and timeouts both stop a benchmark at
//! its next iteration boundary, so everything measured so far is kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A flag checked between iterations.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Installs the Ctrl-C handler: the first press sets the returned flag (the
/// day stops at the next safe point and writes its report); a second press
/// exits at once with status 130.
pub fn install_interrupt_handler() -> Result<CancelFlag, ctrlc::Error> {
    let flag = CancelFlag::new();
    let presses = Arc::new(AtomicUsize::new(0));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            handler_flag.cancel();
            eprintln!(
                "\ninterrupted: finishing the current iteration and writing the report (Ctrl-C again to abort)"
            );
        } else {
            std::process::exit(130);
        }
    })?;
    Ok(flag)
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send): how a
/// long-lived server (`campaign serve`, `campaign dashboard`) is asked to
/// stop. Unlike [`install_interrupt_handler`], it is a future, for a tokio
/// server's graceful shutdown.
pub async fn wait_for_stop() {
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
