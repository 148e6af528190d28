"""Drives a floom server with the official MCP Python SDK (`mcp` on PyPI).

Run by host/tests/mcp.rs, which starts the server and publishes the apps first:

    python py_client.py SCENARIO BASE_URL MODE [TOKEN]

MODE is the SDK's connect mode: "auto" (probes `server/discover`, 2026-07-28) or
"legacy" (the `initialize` handshake). SCENARIO is one of the functions below. Each
asserts what the client sees and prints one JSON line of what the Rust side checks on
the server (execution ids and the like).
"""

import asyncio
import json
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

EXECUTION_ID = "dev.floom/execution_id"
VIEW_TOKEN = "dev.floom/view_token"


def connect(url, mode, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, mode=mode)


def names(tools):
    return sorted(t.name for t in tools)


async def all_tools(client):
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def check_era(client, mode):
    if mode == "auto":
        assert client.protocol_version == "2026-07-28", client.protocol_version
    else:
        assert client.protocol_version == "2025-11-25", client.protocol_version


async def basics(base, mode, token):
    """List, call, a failing call, invalid inputs, progress, and a run past the sync limit."""
    async with connect(f"{base}/mcp", mode) as client:
        check_era(client, mode)
        tools = await all_tools(client)
        listed = names(tools)
        assert "hello" in listed and "floom_execution" in listed, listed
        assert "mb__emit" in listed and "mb__app-error" in listed, listed
        assert "secret-app" not in listed, "a private tool is invisible without a token"
        hello = next(t for t in tools if t.name == "hello")
        assert hello.input_schema["properties"]["name"]["type"] == "string", hello
        assert hello.output_schema["required"] == ["greeting"], hello

        result = await client.call_tool("hello", {"name": "Ada"})
        assert not result.is_error, result
        assert result.structured_content == {"greeting": "Hello, Ada!"}, result
        assert json.loads(result.content[0].text) == {"greeting": "Hello, Ada!"}, result
        hello_id = result.meta[EXECUTION_ID]
        assert hello_id.startswith("exec_") and result.meta[VIEW_TOKEN], result.meta

        failed = await client.call_tool("mb__app-error", {})
        assert failed.is_error, failed
        assert "app_error" in failed.content[0].text, failed.content
        assert "it went wrong on purpose" in failed.content[0].text, failed.content
        assert failed.structured_content["error"]["code"] == "app_error", failed

        invalid = await client.call_tool("hello", {"name": 5})
        assert invalid.is_error, invalid
        assert "/name" in invalid.content[0].text, invalid.content
        assert invalid.structured_content["error"]["errors"][0]["path"] == "/name", invalid

        seen = []

        async def progress(value, total, message):
            seen.append((value, message))

        streamed = await client.call_tool(
            "mb__emit", {"count": 3, "ms": 50}, progress_callback=progress
        )
        assert not streamed.is_error, streamed
        assert streamed.structured_content == {"emitted": 3}, streamed
        assert [json.loads(m) for _, m in seen] == [{"i": 0}, {"i": 1}, {"i": 2}], seen
        assert [v for v, _ in seen] == [1, 2, 3], seen

        # Past the server's sync limit (3 s in the test): the execution id and view token,
        # then the built-in tool waits for the end.
        slow = await client.call_tool("mb__sleep", {"ms": 4500})
        assert slow.is_error and slow.structured_content["status"] == "running", slow
        assert "floom_execution" in slow.content[0].text, slow.content
        later = await client.call_tool(
            "floom_execution",
            {
                "execution_id": slow.structured_content["execution_id"],
                "view_token": slow.structured_content["view_token"],
            },
        )
        assert not later.is_error, later
        assert later.structured_content["status"] == "succeeded", later
        assert later.structured_content["output"] == {"slept_ms": 4500}, later
        print(json.dumps({"hello": hello_id, "slow": slow.structured_content["execution_id"]}))


async def cancel(base, mode, token):
    """A call abandoned by the client: its execution ends cancelled."""
    async with connect(f"{base}/mcp", mode) as client:
        check_era(client, mode)
        with anyio.move_on_after(2):
            await client.call_tool("mb__sleep", {"ms": 60000})
            raise AssertionError("the call should have been abandoned")
        # The client is still usable after.
        result = await client.call_tool("hello", {"name": "after"})
        assert result.structured_content == {"greeting": "Hello, after!"}, result
    print(json.dumps({"cancelled": True}))


async def private(base, mode, token):
    """Private tools: invisible and uncallable without a token, there with one."""
    async with connect(f"{base}/mcp", mode) as anonymous:
        assert "secret-app" not in names(await all_tools(anonymous))
        try:
            await anonymous.call_tool("secret-app", {})
            raise AssertionError("an invisible tool was called")
        except Exception as e:  # the SDK raises MCPError
            assert "Unknown tool" in str(e), e
    async with connect(f"{base}/mcp", mode, token) as client:
        assert "secret-app" in names(await all_tools(client))
        result = await client.call_tool("secret-app", {})
        assert not result.is_error and result.structured_content["ok"] is True, result
    print(json.dumps({"private": result.meta[EXECUTION_ID]}))


async def one_app(base, mode, token):
    """The per-app URL: that app's tools only (and the built-in one)."""
    async with connect(f"{base}/mcp/apps/hello", mode) as client:
        assert names(await all_tools(client)) == ["floom_execution", "hello"]
        result = await client.call_tool("hello", {})
        assert result.structured_content == {"greeting": "Hello, world!"}, result
        try:
            await client.call_tool("mb__emit", {})
            raise AssertionError("another app's tool was called through /mcp/apps/hello")
        except Exception as e:
            assert "Unknown tool" in str(e), e
    print(json.dumps({"one_app": True}))


async def paging(base, mode, token):
    """More tools than a page: the SDK follows the cursor."""
    async with connect(f"{base}/mcp", mode) as client:
        first = await client.list_tools()
        assert first.next_cursor, "the first page says there is more"
        tools = await all_tools(client)
        listed = names(tools)
        assert len(listed) == len(set(listed)), "no tool twice"
    print(json.dumps({"tools": len(listed)}))


async def stdio(base, mode, token):
    """The stdio bridge, `floom mcp`, spawned by the SDK's stdio client."""
    floom = sys.argv[5]
    params = StdioServerParameters(command=floom, args=["mcp", "--server", base, "--token", token])
    async with Client(params, mode=mode) as client:
        check_era(client, mode)
        listed = names(await all_tools(client))
        assert "hello" in listed and "secret-app" in listed, listed
        result = await client.call_tool("hello", {"name": "stdio"})
        assert result.structured_content == {"greeting": "Hello, stdio!"}, result
        seen = []

        async def progress(value, total, message):
            seen.append(message)

        streamed = await client.call_tool("mb__emit", {"count": 2}, progress_callback=progress)
        assert streamed.structured_content == {"emitted": 2} and len(seen) == 2, (streamed, seen)
        with anyio.move_on_after(2):
            await client.call_tool("mb__sleep", {"ms": 60000})
            raise AssertionError("the call should have been abandoned")
    params = StdioServerParameters(
        command=floom, args=["mcp", "--server", base, "--app", "hello"]
    )
    async with Client(params, mode=mode) as client:
        assert names(await all_tools(client)) == ["floom_execution", "hello"]
    print(json.dumps({"stdio": result.meta[EXECUTION_ID]}))


if __name__ == "__main__":
    scenario, base, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    asyncio.run(globals()[scenario](base, mode, token))
