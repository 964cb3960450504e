// The official `openai` Node client against the relayer `compux up` runs (scripts/test.sh):
// for each SIMULATED provider (one per upstream protocol: OpenAI, Anthropic, Gemini, AWS Bedrock), a plain
// reply charged exactly, a stream with include_usage, a tool call plain and streamed, and an
// image input.
//
//   node openai_check.mjs <relayer url> <api key>
import OpenAI from "openai";

const [relayer, apiKey] = process.argv.slice(2);
const url = relayer.replace(/\/v1$/, "");
const MODEL = "compux-sim-chat";
// The providers `compux up` configures, with the caller's price per 1M tokens (in, out).
const PROVIDERS = {
  "sim-economy (simulated)": [1_000_000, 2_000_000],
  "sim-premium (anthropic protocol) (simulated)": [3_000_000, 6_000_000],
  "sim-standard (gemini protocol) (simulated)": [2_000_000, 4_000_000],
  "sim-reserve (bedrock protocol) (simulated)": [4_000_000, 8_000_000],
};
const PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const TOOLS = [{ type: "function", function: { name: "weather", parameters: { type: "object", properties: { query: { type: "string" } } } } }];
const HELLO = [{ role: "user", content: "Say hello" }];

let passed = 0;
function check(ok, what) {
  if (!ok) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
  passed += 1;
}
const priceOf = (u, [input, output]) => Math.ceil((u.prompt_tokens * input + u.completion_tokens * output) / 1_000_000);

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
for (const [name, price] of Object.entries(PROVIDERS)) {
  const only = { provider: { only: [name] } };
  const { data: reply, response } = await client.chat.completions
    .create({ model: MODEL, messages: HELLO, max_tokens: 50, ...only })
    .withResponse();
  check(response.headers.get("x-compux-provider") === name, `${name}: served by it`);
  check(reply.choices[0].message.content.includes("simulated reply"), `${name}: plain ${JSON.stringify(reply)}`);
  const charged = Number(response.headers.get("x-compux-credits-charged"));
  check(charged === priceOf(reply.usage, price) && reply.usage.cost === charged, `${name}: charged ${charged} for ${JSON.stringify(reply.usage)}`);

  let text = "";
  let usage = null;
  const stream = await client.chat.completions.create({
    model: MODEL, messages: HELLO, max_tokens: 50, stream: true, stream_options: { include_usage: true }, ...only,
  });
  for await (const chunk of stream) {
    for (const c of chunk.choices) text += c.delta.content ?? "";
    usage = chunk.usage ?? usage;
  }
  check(text.endsWith("simulated reply"), `${name}: streamed ${text}`);
  check(usage && usage.cost === priceOf(usage, price), `${name}: stream usage ${JSON.stringify(usage)}`);

  const asked = [{ role: "user", content: "What is the weather in Paris?" }];
  const called = await client.chat.completions.create({ model: MODEL, messages: asked, tools: TOOLS, tool_choice: "required", max_tokens: 50, ...only });
  const call = called.choices[0].message.tool_calls[0];
  check(called.choices[0].finish_reason === "tool_calls" && call.function.name === "weather"
    && JSON.parse(call.function.arguments).query === "simulated", `${name}: tool call ${JSON.stringify(called)}`);

  let toolName = null;
  let args = "";
  const toolStream = await client.chat.completions.create({
    model: MODEL, messages: asked, tools: TOOLS, tool_choice: "required", max_tokens: 50, stream: true, ...only,
  });
  for await (const chunk of toolStream) {
    for (const c of chunk.choices) {
      for (const t of c.delta.tool_calls ?? []) {
        toolName = t.function?.name ?? toolName;
        args += t.function?.arguments ?? "";
      }
    }
  }
  check(toolName === "weather" && JSON.parse(args).query === "simulated", `${name}: streamed tool call ${toolName} ${args}`);

  const image = [{ role: "user", content: [{ type: "text", text: "What is in this picture?" }, { type: "image_url", image_url: { url: PIXEL } }] }];
  const seen = await client.chat.completions.create({ model: MODEL, messages: image, max_tokens: 50, ...only });
  check(seen.choices[0].message.content.includes("simulated reply"), `${name}: image ${JSON.stringify(seen)}`);
}
console.log(`official Node openai client: ${passed} checks passed (${Object.keys(PROVIDERS).length} protocols)`);
