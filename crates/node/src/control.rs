//! The REST API's operator requests (`/restart`, `/reload`, `/reinitialize`) handed to the HA loop,
//! which decides them like everything else and answers through a oneshot channel.

use async_trait::async_trait;
use ferroni_api::{ApiError, NodeControl, RestartRequest};
use ferroni_decision::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

pub type Reply = oneshot::Sender<Result<String, (u16, String)>>;

/// A request waiting for the loop.
pub struct Pending {
    pub request: Request,
    pub reply: Reply,
}

pub struct Control {
    tx: mpsc::Sender<Pending>,
    wake: Arc<Notify>,
    /// How long a caller waits for a restart to finish.
    restart_timeout: Duration,
}

impl Control {
    pub fn new(wake: Arc<Notify>, restart_timeout: Duration) -> (Control, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(16);
        (
            Control {
                tx,
                wake,
                restart_timeout,
            },
            rx,
        )
    }

    async fn ask(&self, request: Request, timeout: Duration) -> Result<String, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { request, reply })
            .await
            .map_err(|_| ApiError::unavailable("the HA loop is not running"))?;
        self.wake.notify_one();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(message))) => Ok(message),
            Ok(Ok(Err((status, message)))) => Err(ApiError::new(status, message)),
            Ok(Err(_)) => Err(ApiError::unavailable("the HA loop dropped the request")),
            Err(_) => Err(ApiError::unavailable("timed out waiting for the HA loop")),
        }
    }
}

#[async_trait]
impl NodeControl for Control {
    async fn restart(&self, req: RestartRequest) -> Result<String, ApiError> {
        let timeout = req.timeout.unwrap_or(self.restart_timeout);
        self.ask(Request::Restart, timeout).await
    }

    async fn reload(&self) -> Result<String, ApiError> {
        self.ask(Request::Reload, Duration::from_secs(30)).await
    }

    async fn reinitialize(&self, force: bool, from_leader: bool) -> Result<String, ApiError> {
        self.ask(Request::Reinitialize { force, from_leader }, Duration::from_secs(30))
            .await
    }
}
