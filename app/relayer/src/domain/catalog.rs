//! The providers the relayer routes to and the models each serves, at what price per UTC
//! hour (what the caller pays, and what the provider charges the marketplace).

use serde::{Deserialize, Serialize};

use crate::domain::pricing::Price;

/// The protocol a provider speaks (`kind` in the configuration); the relayer translates
/// the OpenAI shape its callers use to and from it (docs/providers.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenAI's Chat Completions, Completions and Embeddings (vLLM, Together, Fireworks..).
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`POST /v1/messages`): chat only.
    Anthropic,
    /// Google's Gemini API (`models/{model}:generateContent`, `:streamGenerateContent`).
    Gemini,
    /// Azure OpenAI: OpenAI's protocol at `{base_url}/deployments/{deployment}/...`, the
    /// deployment being the model's `upstream_model`, with `api-version` and an `api-key`.
    Azure,
    /// AWS Bedrock's Converse API (`model/{model}/converse`, `/converse-stream`), signed with
    /// SigV4 from the AWS environment variables, in the provider's `region`.
    Bedrock,
}

impl Protocol {
    fn is_default(&self) -> bool {
        *self == Protocol::OpenAi
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    /// The protocol's base URL, e.g. `https://api.example.com/v1` or
    /// `https://api.anthropic.com/v1`.
    pub base_url: String,
    /// `openai` (the default), `anthropic`, `gemini`, `azure` or `bedrock`.
    #[serde(default, skip_serializing_if = "Protocol::is_default")]
    pub kind: Protocol,
    /// Environment variable holding the provider's API key, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Azure's `api-version` (default `2024-10-21`, its GA version when this was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Bedrock's AWS region (default: `AWS_REGION`, else `us-east-1`), which its SigV4
    /// signature names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// OpenAI protocol: the field that carries the bound the relayer holds when a request
    /// does not set it (`max_tokens`, which every compatible host honours, by default;
    /// `max_completion_tokens` for OpenAI's own reasoning models, which refuse `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<String>,
    /// This provider's wait for a reply's first byte, in milliseconds, when it differs from
    /// the relayer's `first_byte_timeout_ms` (slow reasoning models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    /// This provider's limit on one whole attempt, when it differs from `total_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_timeout_ms: Option<u64>,
    pub models: Vec<Model>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The public name callers ask for; several providers may serve it.
    pub name: String,
    /// The provider's own id for it (e.g. `claude-sonnet-4-5-20250929`), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// What the caller pays, in credit base units per 1M tokens.
    #[serde(flatten)]
    pub price: Price,
    /// Optional multiplier per UTC hour 0..23, in basis points (10000 = the price above):
    /// off-peak discounts and peak surcharges, as providers price them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour_multipliers_bps: Option<Vec<u32>>,
    /// What the provider charges the marketplace for the same tokens (defaults to the
    /// caller's price: no margin), recorded with every request for provider spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_price: Option<Price>,
    /// Prompt tokens held for each image a request sends this model, when it bills an
    /// image above the relayer's `image_tokens` (OpenAI's gpt-4o-mini counts each image 33
    /// times over) or below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
}

impl Provider {
    /// An OpenAI-compatible provider at `base_url` (no API key) serving `models`.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, models: Vec<Model>) -> Provider {
        Provider {
            name: name.into(),
            base_url: base_url.into(),
            kind: Protocol::OpenAi,
            api_key_env: None,
            api_version: None,
            region: None,
            max_tokens_field: None,
            first_byte_timeout_ms: None,
            total_timeout_ms: None,
            models,
        }
    }
}

impl Model {
    /// `name` at one price all day, what the provider charges equal to it.
    pub fn priced(name: impl Into<String>, input_per_1m: u64, output_per_1m: u64) -> Model {
        Model {
            name: name.into(),
            upstream_model: None,
            price: Price::flat(input_per_1m, output_per_1m),
            hour_multipliers_bps: None,
            provider_price: None,
            image_tokens: None,
        }
    }

    /// The caller's price at UTC hour `hour` (0..24).
    pub fn price_at(&self, hour: usize) -> Price {
        self.scaled_at(self.price, hour)
    }

    /// The provider's own price at UTC hour `hour`: the hour's multiplier applies to it too,
    /// since it models the provider's own off-peak pricing.
    pub fn provider_price_at(&self, hour: usize) -> Price {
        self.scaled_at(self.provider_price.unwrap_or(self.price), hour)
    }

    fn scaled_at(&self, price: Price, hour: usize) -> Price {
        match &self.hour_multipliers_bps {
            Some(m) => crate::domain::pricing::scaled(price, m[hour % 24]),
            None => price,
        }
    }
}
