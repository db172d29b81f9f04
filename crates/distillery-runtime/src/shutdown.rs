//! SIGTERM / ctrl-c handling: the first signal cancels the token (stop taking work, drain in-flight inputs
//! within the drain timeout, then exit); a second one exits at once (status 130), whatever is running.

use tokio_util::sync::CancellationToken;

/// The exit status after a second interrupt (128 + SIGINT).
pub const INTERRUPTED_TWICE: i32 = 130;

/// A token cancelled on SIGTERM or ctrl-c; a second signal ends the process immediately.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM; only ctrl-c stops the process");
                    let _ = tokio::signal::ctrl_c().await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = int.recv() => tracing::warn!("interrupted: finishing what is in flight (interrupt again to exit at once)"),
                _ = term.recv() => tracing::info!("SIGTERM received; draining (a second signal exits at once)"),
            }
            t.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("interrupted again: exiting now (what was in flight is done again by the next run)");
            std::process::exit(INTERRUPTED_TWICE);
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            t.cancel();
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(INTERRUPTED_TWICE);
        }
    });
    token
}
