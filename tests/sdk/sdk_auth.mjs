// SPDX-License-Identifier: Apache-2.0
// The official OpenAI Node SDK with a sluice API key, against a tenant
// limited to a few requests a minute.
//   node sdk_auth.mjs BASE_URL API_KEY
// Prints one JSON object; tests/integration/test_sdk.py asserts on it.
import OpenAI from 'openai';

const [baseURL, apiKey] = process.argv.slice(2);
if (!baseURL || !apiKey) {
  console.error('usage: node sdk_auth.mjs BASE_URL API_KEY');
  process.exit(2);
}
const messages = [{ role: 'user', content: 'who am I?' }];
const result = {};

function describe(e) {
  return { threw: e?.constructor?.name ?? String(e), status: e?.status ?? null,
           code: e?.code ?? null, type: e?.type ?? null,
           retry_after: e?.headers?.get?.('retry-after') ?? e?.headers?.['retry-after'] ?? null };
}

const good = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const remaining = [];
try {
  for (let i = 0; i < 10; i++) {
    const { response } = await good.chat.completions
      .create({ model: 'mock-small', messages }).withResponse();
    remaining.push(Number(response.headers.get('x-ratelimit-remaining-requests')));
  }
  result.limited = { threw: null };
} catch (e) {
  result.limited = describe(e);
}
result.remaining = remaining;

const bad = new OpenAI({ baseURL, apiKey: apiKey.slice(0, -3) + 'xyz', maxRetries: 0 });
try {
  await bad.chat.completions.create({ model: 'mock-small', messages });
  result.bad_key = { threw: null };
} catch (e) {
  result.bad_key = describe(e);
}
console.log(JSON.stringify(result));
