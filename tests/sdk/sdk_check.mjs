// SPDX-License-Identifier: Apache-2.0
// The official OpenAI Node SDK, unchanged, against sluice.
//   node sdk_check.mjs http://127.0.0.1:PORT/v1
// Prints one JSON object; tests/integration/test_sdk.py asserts on it.
import OpenAI from 'openai';

const baseURL = process.argv[2];
if (!baseURL) {
  console.error('usage: node sdk_check.mjs BASE_URL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: 'sk-test', maxRetries: 0, timeout: 20000 });
const result = { sdk_version: OpenAI.VERSION ?? null };

async function step(name, fn) {
  try {
    result[name] = await fn();
  } catch (e) {
    result[name] = { threw: e?.constructor?.name ?? String(e), status: e?.status ?? null,
                     message: String(e?.message ?? e) };
  }
}

// An error case: which SDK class the gateway's answer turns into.
async function errorCase(fn) {
  try {
    await fn();
    return { threw: null };
  } catch (e) {
    const classes = ['BadRequestError', 'AuthenticationError', 'NotFoundError',
                     'RateLimitError', 'InternalServerError', 'APIConnectionError', 'APIError']
      .filter((c) => OpenAI[c] && e instanceof OpenAI[c]);
    return { threw: e?.constructor?.name ?? null, classes, status: e?.status ?? null,
             code: e?.code ?? null, type: e?.type ?? null, message: String(e?.message ?? e) };
  }
}

const messages = [{ role: 'user', content: 'tell me about sluices and gates' }];

await step('chat', async () => {
  const r = await client.chat.completions.create({ model: 'mock-small', messages });
  return { id: r.id, object: r.object, content: r.choices[0].message.content,
           finish_reason: r.choices[0].finish_reason, usage: r.usage };
});

await step('chat_stream', async () => {
  const stream = await client.chat.completions.create({ model: 'mock-small', messages,
                                                        stream: true });
  let content = '';
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.content) content += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { content, chunks, finish_reason: finish, usage };
});

await step('chat_stream_usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'mock-small', messages, stream: true, stream_options: { include_usage: true } });
  let content = '';
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) if (c.delta?.content) content += c.delta.content;
  }
  return { content, usage };
});

await step('embeddings', async () => {
  // The SDK asks for base64 by default and decodes it to floats.
  const r = await client.embeddings.create({ model: 'mock-embed', input: ['one two', 'three'] });
  return { n: r.data.length, dims: r.data.map((d) => d.embedding.length),
           first: r.data[0].embedding.slice(0, 4), usage: r.usage };
});

await step('embeddings_float', async () => {
  const r = await client.embeddings.create({ model: 'mock-embed', input: ['one two', 'three'],
                                             encoding_format: 'float' });
  return { first: r.data[0].embedding.slice(0, 4), dims: r.data.map((d) => d.embedding.length) };
});

await step('models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  return { ids };
});

await step('err_400', () => errorCase(() =>
  client.chat.completions.create({ model: 'mock-small', messages, stream: 'yes' })));
await step('err_404', () => errorCase(() =>
  client.chat.completions.create({ model: 'no-such-model', messages })));
await step('err_429', () => errorCase(() =>
  client.chat.completions.create({ model: 'mock-small', messages },
                                 { headers: { 'x-mock-status': '429' } })));
await step('err_500', () => errorCase(() =>
  client.chat.completions.create({ model: 'mock-small', messages },
                                 { headers: { 'x-mock-status': '500' } })));
await step('err_stream_mid', () => errorCase(async () => {
  const stream = await client.chat.completions.create(
    { model: 'mock-small', messages, stream: true },
    { headers: { 'x-mock-fault': 'reset-mid-stream', 'x-mock-tokens': '20' } });
  for await (const chunk of stream) { void chunk; }
}));

const defaults = new OpenAI({ baseURL, apiKey: 'sk-test', maxRetries: 0,
                              defaultHeaders: { 'x-mock-status': '429' } });
await step('err_429_default_headers', () => errorCase(() =>
  defaults.chat.completions.create({ model: 'mock-small', messages })));

console.log(JSON.stringify(result));
