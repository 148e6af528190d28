// Drives a floom server with the official MCP TypeScript SDK (@modelcontextprotocol/sdk).
//
// Run by host/tests/mcp.rs, which starts the server and publishes the apps first:
//
//     node ts_client.mjs BASE_URL TOKEN FLOOM_BINARY
//
// Goes through list, call, a failing call, progress, cancellation, private tools with and
// without a token, the per-app URL and the stdio bridge; asserts what the client sees and
// prints one JSON line of what the Rust side checks on the server.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [base, token, floom] = process.argv.slice(2);

async function connect(path, withToken) {
  const client = new Client({ name: "floom-test", version: "1.0.0" });
  const headers = withToken ? { Authorization: `Bearer ${token}` } : {};
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}${path}`), { requestInit: { headers } }),
  );
  return client;
}

async function allTools(client) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

const names = (tools) => tools.map((t) => t.name).sort();

const client = await connect("/mcp", false);
assert.equal(client.getServerVersion().name, "floom");
const tools = await allTools(client);
const listed = names(tools);
assert.ok(listed.includes("hello") && listed.includes("mb__emit"), listed.join());
assert.ok(!listed.includes("secret-app"), "a private tool is invisible without a token");
assert.ok(listed.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n)), listed.join());

const hello = await client.callTool({ name: "hello", arguments: { name: "Ada" } });
assert.equal(hello.isError, false);
assert.deepEqual(hello.structuredContent, { greeting: "Hello, Ada!" });
assert.deepEqual(JSON.parse(hello.content[0].text), { greeting: "Hello, Ada!" });
const helloId = hello._meta["dev.floom/execution_id"];
assert.match(helloId, /^exec_/);

const failed = await client.callTool({ name: "mb__app-error", arguments: {} });
assert.equal(failed.isError, true);
assert.match(failed.content[0].text, /app_error/);

const seen = [];
const streamed = await client.callTool(
  { name: "mb__emit", arguments: { count: 3, ms: 50 } },
  undefined,
  { onprogress: (p) => seen.push(p) },
);
assert.deepEqual(streamed.structuredContent, { emitted: 3 });
assert.deepEqual(seen.map((p) => JSON.parse(p.message)), [{ i: 0 }, { i: 1 }, { i: 2 }]);

// Cancellation: abort the call; the SDK sends notifications/cancelled.
const abort = new AbortController();
const cancelled = client.callTool(
  { name: "mb__sleep", arguments: { ms: 60000 } },
  undefined,
  { signal: abort.signal },
);
setTimeout(() => abort.abort("changed my mind"), 1500);
await assert.rejects(cancelled);
// The client goes on (and its cancellation, sent in the background, lands before close).
const after = await client.callTool({ name: "hello", arguments: { name: "after" } });
assert.deepEqual(after.structuredContent, { greeting: "Hello, after!" });
await client.close();

const anonymous = await connect("/mcp", false);
await assert.rejects(
  anonymous.callTool({ name: "secret-app", arguments: {} }),
  /Unknown tool/,
);
await anonymous.close();
const authorized = await connect("/mcp", true);
assert.ok(names(await allTools(authorized)).includes("secret-app"));
const secret = await authorized.callTool({ name: "secret-app", arguments: {} });
assert.equal(secret.structuredContent.ok, true);
await authorized.close();

const oneApp = await connect("/mcp/apps/hello", false);
assert.deepEqual(names(await allTools(oneApp)), ["floom_execution", "hello"]);
await oneApp.close();

const stdio = new Client({ name: "floom-test-stdio", version: "1.0.0" });
await stdio.connect(
  new StdioClientTransport({ command: floom, args: ["mcp", "--server", base, "--token", token] }),
);
assert.ok(names(await allTools(stdio)).includes("secret-app"));
const viaStdio = await stdio.callTool({ name: "hello", arguments: { name: "stdio" } });
assert.deepEqual(viaStdio.structuredContent, { greeting: "Hello, stdio!" });
await stdio.close();

console.log(JSON.stringify({ hello: helloId, stdio: viaStdio._meta["dev.floom/execution_id"] }));
