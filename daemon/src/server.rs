//! The accept loop and graceful shutdown.
//!
//! Shutdown as in mini-redis: a broadcast channel tells every connection to
//! stop; each connection holds a clone of an mpsc sender, so when the
//! receiver sees all senders dropped, every connection has finished (and
//! rolled back what it had open).

use crate::broker::Broker;
use crate::conn;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc};
use tracing::{error, info, warn};

/// Serves `listener` until `shutdown` completes, then waits up to `grace`
/// for connections to roll back and close.
pub async fn run(
    listener: UnixListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    // Tells connections to stop.
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    // Dropped by each connection when it is done.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    // Idle server connections past their timeout are closed in the
    // background, so an idle broker holds no stale backends.
    let reaper = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                broker.pool().reap(None);
                crate::fairness::record_summaries(broker.audit(), false);
            }
        })
    };
    // The OpenBao token is renewed at half its time even while no session
    // asks for a password.
    let secrets_keeper = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                broker.secrets().maintain(&broker.config()).await;
            }
        })
    };
    let watcher = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.watch_docker().await })
    };
    // Change requests a stopped broker left running are settled by what
    // PostgreSQL recorded of them.
    tokio::spawn(crate::approval::lifecycle::settle_at_start(broker.clone()));
    // The accept loop runs as a task on the workers, not in the caller's
    // `block_on`: a connection is then accepted on the thread that saw the
    // socket become readable, one thread hand-off less per connection.
    let accept = {
        let broker = broker.clone();
        let notify_shutdown = notify_shutdown.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let broker = broker.clone();
                        let stop = notify_shutdown.subscribe();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            conn::serve(stream, broker, stop).await;
                            drop(done);
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning,
                        // and keep serving the connections we have.
                        error!(cause = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    shutdown.await;
    info!("shutting down: rolling back open transactions");
    // The loop's own shutdown sender and done handle must be gone before
    // waiting for the connections: wait for the aborted task to drop them.
    accept.abort();
    let _ = accept.await;
    reaper.abort();
    secrets_keeper.abort();
    watcher.abort();
    drop(notify_shutdown);
    drop(done_tx);
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        warn!(
            grace_ms = grace.as_millis() as u64,
            "sessions still busy after the grace period; exiting anyway (the database rolls back what they had open)"
        );
    }
    // What was only counted is recorded before the broker's last record.
    crate::fairness::record_summaries(broker.audit(), true);
}
