"""A small MCP server (the official Python SDK, Streamable HTTP) for Steward's MCP point:
the support tools an agent may or may not be allowed to call.

    python support_mcp_server.py --port 9400

It trusts the gateway in front of it: the caller's verified identity arrives as the
`x-steward-identity` header, never the agent's token.
"""

import argparse

from mcp.server.mcpserver import MCPServer

server = MCPServer("support")


@server.tool()
def lookup_order(order: str) -> str:
    """Looks an order up."""
    return f"order {order}: shipped"


@server.tool()
def refund_payment(order: str, amount: int) -> str:
    """Refunds part of an order's payment."""
    return f"refunded {amount} on {order}"


@server.tool()
def delete_all() -> str:
    """Deletes every order (no agent should ever be allowed this)."""
    return "deleted everything"


@server.resource("orders://o-1", mime_type="application/json")
def order_o1() -> str:
    """One order, as JSON."""
    return '{"order": "o-1", "status": "shipped"}'


@server.resource("orders://secret/keys", mime_type="text/plain")
def order_keys() -> str:
    """Signing keys (no agent should ever read this)."""
    return "secret"


@server.prompt()
def summarise_order(order: str) -> str:
    """A prompt asking the model to summarise one order."""
    return f"Summarise order {order} for the customer."


@server.prompt()
def draft_refund(order: str) -> str:
    """A prompt drafting a refund (not for agents)."""
    return f"Draft a refund for order {order}."


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--json", action="store_true", help="answer JSON instead of SSE streams")
    args = parser.parse_args()
    server.run("streamable-http", host="127.0.0.1", port=args.port, json_response=args.json)
