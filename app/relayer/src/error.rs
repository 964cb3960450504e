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
    /// Seconds after which a rate-limited caller may retry (`retry-after`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, param: None, message: message.into(), retry_after: None }
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

    /// A valid key that may not do this (a limited key managing its account's alerts).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "invalid_request_error", code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", code, message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", message)
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

    pub fn burn_ceiling(available: u64, needed: u64) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "burn_ceiling_reached",
            format!(
                "The daily burn ceiling this account's owner set leaves {available} credit base units today, and this \
                 request may cost up to {needed}. It resets at 00:00 UTC; the owner may raise it (`compux burn-ceiling`)."
            ),
        )
    }

    pub fn credits_frozen(facility: &solana_sdk::pubkey::Pubkey, needed: u64) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "credits_frozen",
            "credits_frozen",
            format!(
                "The financed credits that could cover this request (up to {needed} credit base units) are frozen: \
                 the lender froze facility {facility} after a default. Your credit vault's own credits still serve; \
                 buy credits (`compux buy`), or repay the facility (`compux borrower repay`) to cure it."
            ),
        )
    }

    /// Too many requests for the key's per-minute limit.
    pub fn rate_limited(per_minute: u32, retry_after_ms: u64) -> Self {
        let secs = retry_after_ms.div_ceil(1_000).max(1);
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_exceeded",
                format!("Rate limit reached: this key may start {per_minute} requests per minute. Retry in {secs} s."),
            )
        }
    }

    /// The key's daily credit budget would be exceeded.
    pub fn daily_limit(limit: u64, used: u64, needed: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "daily_credit_limit_exceeded",
            format!(
                "This key's daily limit is {limit} credit base units; {used} are spent or held today and this request \
                 may cost up to {needed}. It resets at 00:00 UTC; lower max_tokens, or use a key with a higher limit."
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

    /// The balances the hard cap would check are older than the configured bound: the
    /// request is refused rather than admitted on stale data.
    pub fn balances_stale(age: Option<std::time::Duration>) -> Self {
        let since =
            age.map_or("never been read".to_string(), |a| format!("not been read for {} s", a.as_secs()));
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "balances_stale",
                format!(
                    "The relayer's on-chain balances have {since} (the chain is unreachable), so it cannot \
                     enforce the credit cap. Nothing was charged; retry shortly."
                ),
            )
        }
    }

    /// This replica's share of the shared balance lapsed or is not granted yet: not the
    /// caller's lack of credits (402 would say so), a moment's unavailability.
    pub fn lease_unavailable() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "balance_lease_unavailable",
                "This relayer replica holds no current lease on the account's balance (the shared \
                 ledger is slow or unreachable), so it cannot enforce the credit cap. Nothing was \
                 charged; retry shortly.",
            )
        }
    }

    /// This replica serves as many requests as it may at once (`max_concurrent_requests`).
    pub fn overloaded(limit: usize) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "overloaded",
                format!(
                    "This relayer is serving {limit} requests at once, its limit. Nothing was charged; \
                     retry shortly."
                ),
            )
        }
    }

    pub fn upstream(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "upstream_error", "upstream_unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert("retry-after", secs.into());
        }
        res
    }
}
