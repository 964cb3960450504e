//! `bare-proxy LISTEN UPSTREAM_URL`: the floor of the relayer's stack, for the external bench
//! (`scripts/bench_external.sh`). axum in, reqwest out, the body passed through untouched:
//! nothing authenticated, parsed, metered, routed, recorded or logged. What this serves on a
//! machine is about the most a gateway built on these crates can; the relayer's figures are
//! read against it.

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header::CONTENT_TYPE, StatusCode};
use axum::routing::post;
use axum::Router;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare-proxy LISTEN UPSTREAM_URL (e.g. 127.0.0.1:18091 http://127.0.0.1:18081/v1/chat/completions)";
    let listen = args.next().context(usage)?;
    let upstream = args.next().context(usage)?;
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state((reqwest::Client::new(), upstream));
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn forward(
    State((http, url)): State<(reqwest::Client, String)>,
    body: Bytes,
) -> Result<([(axum::http::HeaderName, &'static str); 1], Bytes), StatusCode> {
    let res = http.post(&url).header(CONTENT_TYPE, "application/json").body(body).send().await;
    let bytes =
        res.map_err(|_| StatusCode::BAD_GATEWAY)?.bytes().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(([(CONTENT_TYPE, "application/json")], bytes))
}
