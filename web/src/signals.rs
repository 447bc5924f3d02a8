//! Process signals: SIGTERM/SIGINT stop accepting and drain; SIGHUP asks for a reload.

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// A channel that receives one message per SIGHUP (bursts collapse into one pending reload);
/// `None` when the handler cannot be installed.
pub fn hangup_channel() -> Option<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut s = signal(SignalKind::hangup()).ok()?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while s.recv().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    Some(rx)
}
