// The Vercel AI SDK's default OpenAI provider: `openai(model)` speaks the Responses API.
// `node ai_sdk.mjs SCENARIO`; the provider reads OPENAI_BASE_URL-free settings, so the gateway's URL
// is given to createOpenAI as its docs show for proxies.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const openai = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY });
const model = openai(process.env.CHAT_MODEL);

const scenarios = {
  async generate() {
    const { text, usage } = await generateText({ model, prompt: "Say hello." });
    return { text, usage: usage.totalTokens };
  },
  async stream() {
    const result = streamText({ model, prompt: "Say hello." });
    let text = "";
    for await (const part of result.textStream) text += part;
    return { text };
  },
  async chat() {
    const { text } = await generateText({ model: openai.chat(process.env.CHAT_MODEL), prompt: "Say hello." });
    return { text };
  },
};

console.log(JSON.stringify(await scenarios[process.argv[2]]()));
