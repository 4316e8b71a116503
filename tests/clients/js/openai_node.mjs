// openai-node's quick-start paths against Switchyard: `node openai_node.mjs SCENARIO` prints one JSON
// object of what it saw. Configured as the SDK is by default: OPENAI_BASE_URL and OPENAI_API_KEY.
import OpenAI from "openai";

const client = new OpenAI();
const model = process.env.CHAT_MODEL;

const scenarios = {
  async chat() {
    const completion = await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Say hello." }],
    });
    return { text: completion.choices[0].message.content, usage: completion.usage.total_tokens };
  },
  async stream() {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Say hello." }],
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return { text };
  },
  async embeddings() {
    const response = await client.embeddings.create({ model: process.env.EMBEDDING_MODEL, input: "hello" });
    return { dimensions: response.data[0].embedding.length };
  },
  async responses() {
    const response = await client.responses.create({ model, input: "Say hello." });
    return { text: response.output_text, status: response.status };
  },
};

console.log(JSON.stringify(await scenarios[process.argv[2]]()));
