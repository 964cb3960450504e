//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
//! status codes OpenAI's SDKs expect. Nothing a caller sends produces a 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub param: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, param: None, message: message.into() }
    }

    pub fn bad_request(code: &'static str, param: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError { param, ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message) }
    }

    pub fn invalid_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Invalid API key. Create one with `compux keys create` and send it as `Authorization: Bearer <key>`.",
        )
    }

    /// A wallet-signed key request that does not check out.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", "invalid_signature", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            param: Some("model"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("The model `{model}` is not served here; GET /v1/models lists those that are."),
            )
        }
    }

    pub fn insufficient_credits(available: u64, needed: u64) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits",
            "insufficient_credits",
            format!(
                "Insufficient credits: {available} credit base units available, and this request may cost up to {needed} \
                 (prompt bound plus max_tokens). Buy credits (`compux buy`), wait for a facility top-up, or lower max_tokens."
            ),
        )
    }

    /// A fault of the relayer itself (never of the caller's input), e.g. the ledger.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "relayer_unavailable",
            format!("The relayer could not complete the request: {e}. Nothing was charged; retry."),
        )
    }

    pub fn upstream(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "upstream_error", "upstream_unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}
