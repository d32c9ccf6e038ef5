//! Helpers shared by the REST API's integration tests.

use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Stops a server started with a shutdown channel and waits (at most 5 s) for it to return Ok.
pub async fn stop_server(stop: oneshot::Sender<()>, task: JoinHandle<std::io::Result<()>>) {
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the server stops within 5 s")
        .expect("the server task did not panic")
        .expect("the server returned Ok");
}
