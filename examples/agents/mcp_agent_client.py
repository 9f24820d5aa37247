"""An agent's MCP client (the official Python SDK, Streamable HTTP) calling tools through
Steward's MCP point with its token, and printing what happened as one JSON object.

    STEWARD_ACCESS_TOKEN=... python mcp_agent_client.py http://127.0.0.1:9401/mcp \
        --call lookup_order '{"order": "o-1"}' --call refund_payment '{"order": "o-1", "amount": 5}'
"""

import argparse
import asyncio
import json
import os
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def text_of(result):
    return " ".join(getattr(c, "text", "") for c in result.content)


def contents_of(result):
    return " ".join(getattr(c, "text", "") for c in result.contents)


def messages_of(result):
    return " ".join(getattr(m.content, "text", "") for m in result.messages)


async def outcome(request, text):
    """What a read or prompt came to: its text, or the error code and message it was refused with."""
    try:
        return {"text": text(await request)}
    except MCPError as e:
        return {"error_code": e.error.code, "error": e.error.message}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--mode", default="auto", help="auto (discover, else initialize) or legacy")
    parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("TOOL", "ARGS"))
    parser.add_argument("--read", action="append", default=[], metavar="URI", help="a resource to read")
    parser.add_argument("--prompt", nargs=2, action="append", default=[], metavar=("NAME", "ARGS"))
    args = parser.parse_args()
    token = os.environ.get("STEWARD_ACCESS_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out = {"statuses": []}

    async def seen(response):
        out["statuses"].append(response.status_code)

    try:
        hooks = {"response": [seen]}
        async with httpx2.AsyncClient(headers=headers, timeout=30, event_hooks=hooks) as http:
            async with Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
                out["protocol"] = client.protocol_version
                listed = await client.list_tools()
                out["tools"] = sorted(t.name for t in listed.tools)
                out["calls"] = []
                for tool, arguments in args.call:
                    result = await client.call_tool(tool, json.loads(arguments))
                    out["calls"].append({"tool": tool, "is_error": bool(result.is_error), "text": text_of(result)})
                if args.read:
                    listed = await client.list_resources()
                    out["resources"] = sorted(str(r.uri) for r in listed.resources)
                out["reads"] = []
                for uri in args.read:
                    out["reads"].append({"uri": uri, **await outcome(client.read_resource(uri), contents_of)})
                if args.prompt:
                    listed = await client.list_prompts()
                    out["prompts"] = sorted(p.name for p in listed.prompts)
                out["prompt_gets"] = []
                for name, arguments in args.prompt:
                    got = await outcome(client.get_prompt(name, json.loads(arguments)), messages_of)
                    out["prompt_gets"].append({"prompt": name, **got})
    except BaseException as e:  # noqa: BLE001 - report any failure as data for the test
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
