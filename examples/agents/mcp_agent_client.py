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


def text_of(result):
    return " ".join(getattr(c, "text", "") for c in result.content)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--mode", default="auto", help="auto (discover, else initialize) or legacy")
    parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("TOOL", "ARGS"))
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
    except BaseException as e:  # noqa: BLE001 - report any failure as data for the test
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
