//! What one request can make a provider bill, known before it is sent. The hold covers this
//! bound, and the forwarded request carries it, so a provider that honours the request bills
//! no more than the relayer holds (docs/relayer.md, "The bill's bound").
//!
//! - Input: every byte of every string in the body counts as a token (a byte-level tokenizer
//!   never makes more tokens than bytes): messages, tool schemas, response formats, anything
//!   a provider may turn into prompt tokens; only the model's name and top-level scalar
//!   options are left out. A number inside the input (a token id) is one token. Framing
//!   adds a few tokens per object and around the whole.
//! - Images: each image part counts `image_tokens` (the most any configured model bills for
//!   one image after the provider's resizing), whatever its source; its bytes do not count.
//! - Output: `max_tokens` (or the default) for each choice (`n`, `best_of`) of each prompt.
//! - Refused with a 400 naming the field: inputs and options the catalog has no price for
//!   (audio in or out, files, predicted outputs, web search, priority tiers), and any
//!   top-level parameter not in the endpoint's list of OpenAI's documented ones (a field
//!   this relayer does not know may change the bill in a way it cannot bound).

use serde_json::Value;

/// The most choices (`n`, `best_of`) one request may ask for.
pub const MAX_CHOICES: u64 = 128;

/// A documented worst case for one image, in prompt tokens: OpenAI's high-detail image at
/// its largest (2048x768 after resizing: 8 tiles of 170 plus 85 = 1,445), Anthropic's
/// (about 1,600 at 1568 px on the long edge), Gemini's 258 per tile; rounded up.
pub const DEFAULT_IMAGE_TOKENS: u64 = 2_000;

/// What a request's shape says about its bill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The most prompt tokens it can count.
    pub prompt_tokens: u64,
    /// How many generations it asks for: each one up to `max_tokens` tokens.
    pub generations: u64,
}

/// Why a request is refused before it is sent: the field, and a message naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// OpenAI's error code: `unsupported_parameter` or `invalid_value`.
    pub code: &'static str,
    /// The parameter, or empty for an unknown one (the message names it).
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code: "unsupported_parameter", field, message: message.into() }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code: "invalid_value", field, message: message.into() }
}

/// The OpenAI parameters forwarded per endpoint (the API reference's lists); the priced
/// ones among them are bounded or refused above and below.
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];
const COMPLETIONS_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
];
const EMBEDDINGS_FIELDS: &[&str] = &["model", "input", "dimensions", "encoding_format", "user"];

/// The first top-level field of `body` that is not one of `known`.
fn unknown_field(body: &Value, known: &[&str]) -> Option<Refusal> {
    let field = body.as_object()?.keys().find(|k| !known.contains(&k.as_str()))?;
    Some(Refusal {
        code: "unsupported_parameter",
        field: "",
        message: format!(
            "Unknown parameter `{field}`: this relayer forwards only the OpenAI parameters it can bound \
             the bill of (docs/relayer.md, \"The bill's bound\"); remove it."
        ),
    })
}

/// Content part types whose price the catalog does not know.
const UNPRICED_PARTS: &[(&str, &str)] = &[
    ("input_audio", "audio input"),
    ("audio", "audio input"),
    ("file", "file input"),
    ("input_file", "file input"),
];

/// Top-level options that change what a provider bills in ways the catalog has no price for.
fn unpriced_option(body: &Value) -> Option<Refusal> {
    let present = |k: &str| !matches!(body.get(k), None | Some(Value::Null));
    if present("audio") {
        return Some(refuse(
            "audio",
            "Audio output has no price in this marketplace's catalog: remove `audio`.",
        ));
    }
    let modalities = &body["modalities"];
    if !modalities.is_null() && !modalities.as_array().is_some_and(|m| m.iter().all(|x| x == "text")) {
        return Some(refuse(
            "modalities",
            "Only text output is priced here: set `modalities` to [\"text\"] or remove it.",
        ));
    }
    if present("prediction") {
        return Some(refuse(
            "prediction",
            "Predicted outputs have no price here (rejected prediction tokens are billed beyond `max_tokens`): remove `prediction`.",
        ));
    }
    if present("web_search_options") {
        return Some(refuse(
            "web_search_options",
            "Web search is billed per search and has no price here: remove `web_search_options`.",
        ));
    }
    match body.get("service_tier") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t == "auto" || t == "default" => None,
        Some(t) => Some(refuse(
            "service_tier",
            format!("`service_tier` {t} is priced differently from the catalog: use \"auto\" or \"default\", or remove it."),
        )),
    }
}

/// The choices asked for by `field` (1 when absent), at most MAX_CHOICES.
fn choices(body: &Value, field: &'static str) -> Result<u64, Refusal> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(1),
        Some(n) => match n.as_u64() {
            Some(n) if (1..=MAX_CHOICES).contains(&n) => Ok(n),
            _ => {
                Err(invalid(field, format!("`{field}` must be an integer from 1 to {MAX_CHOICES}, not {n}.")))
            }
        },
    }
}

/// Counts the prompt tokens `v` can make: its size as JSON (keys, quotes, literals and
/// digits included, since a provider may render any of it into the prompt, as it does tool
/// and response-format schemas). In `token_ids` (a completions `prompt` or an embeddings
/// `input`), a number is a token id: one token.
fn tokens(v: &Value, token_ids: bool) -> u64 {
    match v {
        Value::String(s) => s.len() as u64 + 2,
        Value::Number(_) if token_ids => 1,
        Value::Number(n) => n.to_string().len() as u64,
        Value::Bool(_) => 5,
        Value::Null => 4,
        Value::Array(a) => {
            a.iter().map(|x| tokens(x, token_ids)).fold(a.len() as u64 + 2, u64::saturating_add)
        }
        // Each member: its key, quotes and colon; framing: a few tokens per object.
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| (k.len() as u64 + 4).saturating_add(tokens(x, token_ids)))
            .fold(4, u64::saturating_add),
    }
}

/// The prompt tokens of chat `messages`: every byte as `tokens` counts them, except that a
/// content part is one of the types priced here (text, a refusal, an image) and an image
/// part counts `image_tokens` for its image, whatever its size or source. Only a part of
/// a message's `content` array is an image: a `type` anywhere else is text like the rest.
fn messages(v: &Value, image_tokens: u64) -> Result<u64, Refusal> {
    let Some(list) = v.as_array() else { return Ok(tokens(v, false)) };
    let mut total = list.len() as u64 + 2;
    for m in list {
        let Some(fields) = m.as_object() else {
            total = total.saturating_add(tokens(m, false));
            continue;
        };
        total = total.saturating_add(4);
        for (k, x) in fields {
            total = total.saturating_add(k.len() as u64 + 4);
            let parts = x.as_array().filter(|_| k == "content");
            let counted = match parts {
                Some(parts) => {
                    sum(parts.iter().map(|p| part(p, image_tokens)))?.saturating_add(parts.len() as u64 + 2)
                }
                None => tokens(x, false),
            };
            total = total.saturating_add(counted);
        }
    }
    Ok(total)
}

/// One content part: text and refusals by their bytes, an image at `image_tokens` (plus its
/// other fields' bytes); any other type is refused, naming it.
fn part(p: &Value, image_tokens: u64) -> Result<u64, Refusal> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" | "refusal" => Ok(tokens(p, false)),
        "image_url" => {
            let o = p.as_object().into_iter().flatten();
            image(p)?;
            let rest = o.filter(|(k, _)| *k != "image_url").map(|(k, x)| (k.len() as u64 + 4).saturating_add(tokens(x, false)));
            Ok(rest.fold(image_tokens.saturating_add(4), u64::saturating_add))
        }
        _ => Err(match UNPRICED_PARTS.iter().find(|(t, _)| *t == kind) {
            Some((_, what)) => refuse(
                "messages",
                format!("A `{kind}` content part ({what}) has no price in this marketplace's catalog: send text and images only."),
            ),
            None => refuse(
                "messages",
                format!("A content part of type `{kind}` has no price here: send `text` and `image_url` parts only."),
            ),
        }),
    }
}

fn sum(mut items: impl Iterator<Item = Result<u64, Refusal>>) -> Result<u64, Refusal> {
    items.try_fold(0u64, |total, n| Ok(total.saturating_add(n?)))
}

/// An image part is an image: a `data:` URL of another media type (a PDF, a video, audio,
/// text: billed by their length, not as one image) is refused. A remote URL is taken as
/// an image; the providers fetch and bill it as one.
fn image(part: &Value) -> Result<(), Refusal> {
    let url =
        part.get("image_url").and_then(|u| u.get("url").or(Some(u))).and_then(Value::as_str).unwrap_or("");
    match url.strip_prefix("data:") {
        Some(rest) if !rest.to_ascii_lowercase().starts_with("image/") => Err(refuse(
            "messages",
            format!(
                "An `image_url` part must hold an image; `data:{}` has no price as an image here: send images only.",
                rest.split([';', ',']).next().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// The bound of a request `body` (routing preferences already taken out). `generates` is
/// false for embeddings, `completions` true for the legacy completions endpoint (whose
/// `prompt` may hold several prompts and which has `best_of`).
pub fn of(body: &Value, generates: bool, completions: bool, image_tokens: u64) -> Result<Bound, Refusal> {
    let known = match (generates, completions) {
        (false, _) => EMBEDDINGS_FIELDS,
        (true, true) => COMPLETIONS_FIELDS,
        (true, false) => CHAT_FIELDS,
    };
    if let Some(r) = unknown_field(body, known).or_else(|| unpriced_option(body)) {
        return Err(r);
    }
    // Every top-level field but the model's name and scalar options (max_tokens,
    // temperature, seed, ...), which are no part of the prompt.
    let mut prompt_tokens: u64 = 8;
    for (field, value) in body.as_object().into_iter().flatten() {
        if field != "model" && !value.is_number() && !value.is_boolean() {
            let counted = match field.as_str() {
                "messages" => messages(value, image_tokens)?,
                "prompt" | "input" => tokens(value, true),
                _ => tokens(value, false),
            };
            prompt_tokens = prompt_tokens.saturating_add(counted);
        }
    }
    if !generates {
        return Ok(Bound { prompt_tokens, generations: 0 });
    }
    let n = choices(body, "n")?;
    let mut per_prompt = n;
    let mut prompts = 1;
    if completions {
        // best_of candidates are generated (and billed) server-side, n of them returned.
        let best_of = if matches!(body.get("best_of"), None | Some(Value::Null)) {
            n
        } else {
            choices(body, "best_of")?
        };
        if best_of < n {
            return Err(invalid("best_of", format!("`best_of` ({best_of}) must be at least `n` ({n}).")));
        }
        per_prompt = best_of;
        // An array of strings or of token arrays is one prompt each; an array of token ids
        // is one prompt.
        if let Some(a) = body["prompt"].as_array() {
            if a.first().is_some_and(|x| !x.is_number()) {
                prompts = a.len() as u64;
            }
        }
    }
    let generations = per_prompt.saturating_mul(prompts.max(1));
    if generations > MAX_CHOICES {
        return Err(invalid(
            if completions { "prompt" } else { "n" },
            format!("The request asks for {generations} generations; at most {MAX_CHOICES} per request."),
        ));
    }
    Ok(Bound { prompt_tokens, generations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn chat(body: Value) -> Result<Bound, Refusal> {
        of(&body, true, false, DEFAULT_IMAGE_TOKENS)
    }

    #[test]
    fn only_a_content_part_is_an_image_and_unknown_part_types_are_refused() {
        let text = "x".repeat(600_000);
        // A message (not a part) that says it is an image: its bytes all count.
        let m = json!([{"role": "user", "type": "image_url", "content": text}]);
        assert!(chat(json!({"model": "m", "messages": m})).unwrap().prompt_tokens > 600_000);
        let m = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}, "detail": text}]}]);
        assert!(
            chat(json!({"model": "m", "messages": m})).unwrap().prompt_tokens > 600_000,
            "an image part's other fields count"
        );
        for kind in ["video_url", "audio_url", "input_image", ""] {
            let m = json!([{"role": "user", "content": [{"type": kind, "video_url": {"url": "https://x/v.mp4"}}]}]);
            let r = chat(json!({"model": "m", "messages": m})).unwrap_err();
            assert_eq!((r.code, r.field), ("unsupported_parameter", "messages"), "{kind}");
        }
    }

    #[test]
    fn a_parameter_the_relayer_does_not_know_is_refused_naming_it() {
        let hi = json!([{"role": "user", "content": "Hi"}]);
        let r = chat(json!({"model": "m", "messages": hi, "thinking_budget": 100_000})).unwrap_err();
        assert_eq!(r.code, "unsupported_parameter");
        assert!(r.message.contains("`thinking_budget`"), "{}", r.message);
        assert!(
            chat(json!({"model": "m", "messages": hi, "temperature": 0.2, "seed": 1, "user": "u"})).is_ok()
        );
        let embed = |b| of(&b, false, false, DEFAULT_IMAGE_TOKENS);
        assert!(embed(json!({"model": "m", "input": "x", "dimensions": 8})).is_ok());
        assert!(
            embed(json!({"model": "m", "input": "x", "messages": hi})).is_err(),
            "not an embeddings field"
        );
        let complete = |b| of(&b, true, true, DEFAULT_IMAGE_TOKENS);
        assert!(complete(json!({"model": "m", "prompt": "x", "suffix": "y"})).is_ok());
        assert!(
            complete(json!({"model": "m", "prompt": "x", "tools": []})).is_err(),
            "not a completions field"
        );
    }

    #[test]
    fn tools_and_schemas_count_as_input() {
        let plain = chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})).unwrap();
        let schema = "x".repeat(100_000);
        let tools = chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": schema}}]}))
        .unwrap();
        assert!(tools.prompt_tokens >= plain.prompt_tokens + 100_000, "{tools:?}");
        let format = chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": schema}}}}))
        .unwrap();
        assert!(format.prompt_tokens >= plain.prompt_tokens + 100_000);
    }

    #[test]
    fn an_image_counts_its_worst_case_not_its_bytes() {
        let data = format!("data:image/png;base64,{}", "A".repeat(1_000_000));
        for url in [data.as_str(), "https://example.com/huge.png"] {
            let b = chat(json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}))
            .unwrap();
            assert!((DEFAULT_IMAGE_TOKENS..DEFAULT_IMAGE_TOKENS + 200).contains(&b.prompt_tokens), "{b:?}");
        }
    }

    #[test]
    fn schema_keys_literals_and_digits_count_too() {
        let plain = chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})).unwrap();
        let key = "k".repeat(100_000);
        let parameters = json!({"type": "object", "properties": {key: {}}, "examples": vec![false; 10_000],
            "enum": vec![json!(12_345_678_901_234_567u64); 1_000]});
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": parameters}}]);
        let b = chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": tools}))
            .unwrap();
        assert!(b.prompt_tokens >= plain.prompt_tokens + 100_000 + 50_000 + 17_000, "{b:?}");
        // In an embeddings input or a completions prompt, a number is a token id.
        let ids = of(&json!({"input": vec![50_256; 1_000]}), false, false, 1).unwrap();
        assert!(ids.prompt_tokens < 2_100, "{ids:?}");
    }

    #[test]
    fn an_image_part_must_hold_an_image() {
        for media in ["application/pdf", "video/mp4", "audio/mp3", "text/plain"] {
            let part =
                json!({"type": "image_url", "image_url": {"url": format!("data:{media};base64,AAAA")}});
            let r = chat(json!({"messages": [{"role": "user", "content": [part]}]})).unwrap_err();
            assert!(r.message.contains(media), "{r:?}");
        }
    }

    #[test]
    fn choices_multiply_the_generations() {
        let m = json!([{"role": "user", "content": "Hi"}]);
        assert_eq!(chat(json!({"messages": m, "n": 4})).unwrap().generations, 4);
        assert_eq!(chat(json!({"messages": m})).unwrap().generations, 1);
        let r = chat(json!({"messages": m, "n": 129})).unwrap_err();
        assert_eq!(r.field, "n");
        assert_eq!(chat(json!({"messages": m, "n": 0})).unwrap_err().field, "n");
        assert_eq!(chat(json!({"messages": m, "n": "2"})).unwrap_err().field, "n");
        let completion = |b: Value| of(&b, true, true, DEFAULT_IMAGE_TOKENS);
        assert_eq!(completion(json!({"prompt": ["a", "b", "c"], "n": 2})).unwrap().generations, 6);
        assert_eq!(completion(json!({"prompt": [1, 2, 3], "best_of": 5, "n": 2})).unwrap().generations, 5);
        assert_eq!(completion(json!({"prompt": "a", "best_of": 1, "n": 2})).unwrap_err().field, "best_of");
        assert_eq!(completion(json!({"prompt": vec!["a"; 65], "n": 2})).unwrap_err().field, "prompt");
        assert_eq!(of(&json!({"input": "a"}), false, false, 1).unwrap().generations, 0);
        assert!(of(&json!({"input": "a", "n": 500}), false, false, 1).is_err(), "no `n` in embeddings");
    }

    #[test]
    fn unpriced_inputs_and_options_are_refused_by_name() {
        let m = json!([{"role": "user", "content": "Hi"}]);
        for (extra, field) in [
            (json!({"audio": {"voice": "alloy", "format": "wav"}}), "audio"),
            (json!({"modalities": ["text", "audio"]}), "modalities"),
            (json!({"modalities": "audio"}), "modalities"),
            (json!({"prediction": {"type": "content", "content": "x"}}), "prediction"),
            (json!({"web_search_options": {}}), "web_search_options"),
            (json!({"service_tier": "priority"}), "service_tier"),
            (json!({"service_tier": "flex"}), "service_tier"),
        ] {
            let mut body = json!({"model": "m", "messages": m});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let r = chat(body).unwrap_err();
            assert_eq!(r.field, field);
            assert!(r.message.contains(field), "{r:?}");
        }
        for ok in ["auto", "default"] {
            assert!(chat(json!({"messages": m, "service_tier": ok, "modalities": ["text"]})).is_ok());
        }
        for part in ["input_audio", "file"] {
            let body =
                json!({"messages": [{"role": "user", "content": [{"type": part, part: {"data": "x"}}]}]});
            assert!(chat(body).unwrap_err().message.contains(part));
        }
    }

    proptest! {
        /// No honest count of a prompt (its UTF-8 bytes at most, as a byte-level tokenizer
        /// makes) exceeds the bound, whatever the strings.
        #[test]
        fn the_bound_covers_every_byte(texts in proptest::collection::vec(".{0,64}", 1..8), n in 1u64..=8) {
            let messages: Vec<Value> = texts.iter().map(|t| json!({"role": "user", "content": t})).collect();
            let b = chat(json!({"model": "m", "messages": messages, "n": n})).unwrap();
            let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
            prop_assert!(b.prompt_tokens >= bytes);
            prop_assert_eq!(b.generations, n);
        }
    }
}
