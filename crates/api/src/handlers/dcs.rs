//! Read-only views loaded from the DCS on demand: `/cluster`, `/history`, `GET /config`.
//!
//! Failure story: an unreachable DCS answers 503 with the error text; a cluster without a `config`
//! key answers 502 on `GET /config`, as Patroni does.

use super::{json, text};
use crate::cluster;
use crate::server::ApiState;
use axum::response::Response;
use ferroni_model::ClusterView;

async fn load(api: &ApiState) -> Result<ClusterView, Response> {
    api.dcs.load().await.map_err(|e| {
        tracing::warn!("REST API could not read the DCS: {e}");
        text(503, e.to_string())
    })
}

pub(crate) async fn cluster(api: &ApiState) -> Response {
    match load(api).await {
        Ok(view) => json(200, &cluster::cluster_json(&view, &api.dcs.identity().scope)),
        Err(resp) => resp,
    }
}

pub(crate) async fn history(api: &ApiState) -> Response {
    match load(api).await {
        Ok(view) => json(200, &cluster::history_json(&view)),
        Err(resp) => resp,
    }
}

pub(crate) async fn config(api: &ApiState) -> Response {
    match load(api).await {
        Ok(ClusterView { config: Some(c), .. }) => json(200, &c.value),
        Ok(_) => text(502, "no configuration in the DCS"),
        Err(resp) => resp,
    }
}
