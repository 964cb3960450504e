"""The official OpenAI and Anthropic Python clients against the relayer `compux up` runs.

For each of its SIMULATED providers (one per upstream protocol: OpenAI, Anthropic, Gemini, AWS Bedrock),
chosen with the relayer's `provider.only` preference: a plain reply, a stream with
`include_usage`, a tool call plain and streamed, and an image input, each charged exactly
(the `x-compux-credits-charged` header and `usage.cost` equal the usage at that provider's
price). Then Anthropic's Messages API through the `anthropic` client, plain and streamed.

    python check.py <relayer url> <api key>
"""

import json
import math
import sys

import anthropic
import openai

URL, KEY = sys.argv[1].removesuffix("/v1"), sys.argv[2]
MODEL = "compux-sim-chat"
# The providers `compux up` configures, with the caller's price per 1M tokens (in, out).
PROVIDERS = {
    "sim-economy (simulated)": (1_000_000, 2_000_000),
    "sim-premium (anthropic protocol) (simulated)": (3_000_000, 6_000_000),
    "sim-standard (gemini protocol) (simulated)": (2_000_000, 4_000_000),
    "sim-reserve (bedrock protocol) (simulated)": (4_000_000, 8_000_000),
}
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}}]
HELLO = [{"role": "user", "content": "Say hello"}]

passed = 0


def check(ok, what):
    global passed
    if not ok:
        sys.exit(f"FAIL: {what}")
    passed += 1


def price_of(usage, price):
    return math.ceil((usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000)


def stated_cost(usage):
    return (usage.model_extra or {}).get("cost")


client = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)
for name, price in PROVIDERS.items():
    only = {"provider": {"only": [name]}}

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=50, extra_body=only)
    reply = raw.parse()
    check(raw.headers["x-compux-provider"] == name, f"{name}: served by the provider asked for")
    check("simulated reply" in reply.choices[0].message.content, f"{name}: plain reply: {reply}")
    charged = int(raw.headers["x-compux-credits-charged"])
    check(charged == price_of(reply.usage, price) == stated_cost(reply.usage),
          f"{name}: charged {charged}, usage {reply.usage}")

    text, usage = "", None
    for chunk in client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=50, stream=True,
            stream_options={"include_usage": True}, extra_body=only):
        text += "".join(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    check(text.endswith("simulated reply"), f"{name}: streamed text {text!r}")
    check(usage is not None and stated_cost(usage) == price_of(usage, price), f"{name}: stream usage {usage}")

    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=asked, tools=TOOLS, tool_choice="required", max_tokens=50, extra_body=only)
    call = reply.choices[0].message.tool_calls[0]
    check(reply.choices[0].finish_reason == "tool_calls" and call.function.name == "weather"
          and json.loads(call.function.arguments) == {"query": "simulated"}, f"{name}: tool call {reply}")
    answered = asked + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=answered, tools=TOOLS, max_tokens=50, extra_body=only)
    check("simulated reply" in reply.choices[0].message.content, f"{name}: answer after the tool: {reply}")

    called, arguments, finish = None, "", None
    for chunk in client.chat.completions.create(
            model=MODEL, messages=asked, tools=TOOLS, tool_choice="required", max_tokens=50,
            stream=True, extra_body=only):
        for c in chunk.choices:
            for t in c.delta.tool_calls or []:
                called = (t.function and t.function.name) or called
                arguments += (t.function and t.function.arguments) or ""
            finish = c.finish_reason or finish
    check(called == "weather" and json.loads(arguments) == {"query": "simulated"} and finish == "tool_calls",
          f"{name}: streamed tool call {called} {arguments!r} {finish}")

    image = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": PIXEL}},
    ]}]
    reply = client.chat.completions.create(model=MODEL, messages=image, max_tokens=50, extra_body=only)
    check("simulated reply" in reply.choices[0].message.content, f"{name}: image input {reply}")

claude = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
message = claude.messages.create(model=MODEL, max_tokens=50, system="Be brief.", messages=HELLO)
check(message.type == "message" and "simulated reply" in message.content[0].text, f"messages: {message}")
check(message.stop_reason == "end_turn" and message.usage.output_tokens > 0, f"messages usage: {message}")
premium = {"provider": {"only": ["sim-premium (anthropic protocol) (simulated)"]}}
with claude.messages.stream(model=MODEL, max_tokens=50, messages=HELLO, extra_body=premium) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
check(text.endswith("simulated reply") and final.stop_reason == "end_turn", f"messages stream: {text!r} {final}")
check(final.usage.output_tokens > 0, f"messages stream usage: {final.usage}")

print(f"official Python clients: {passed} checks passed "
      f"(openai {openai.__version__}, anthropic {anthropic.__version__}; {len(PROVIDERS)} protocols)")
