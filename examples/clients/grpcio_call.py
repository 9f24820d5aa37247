#!/usr/bin/env python3
"""Calls a gRPC method through Steward's gateway with Python's grpcio, the client most
Python services use, and prints what the client saw as one JSON object.

The gateway decides `POST /pkg.Service/Method` with `content-type: application/grpc` as
the catalog's gRPC mapping and answers a refusal as a gRPC status, so a stock client
needs nothing Steward-specific: the token goes in the `authorization` metadata.

    STEWARD_ACCESS_TOKEN="$TOKEN" python grpcio_call.py --target 127.0.0.1:8443 \
        --method /payments.v1.Charges/Get

The token is read from the environment, never from the command line, where any user of
the machine could read it in the process list.

Messages are sent and received as raw bytes (hex on the command line), so no generated
stubs are needed. With --stream N, N messages are sent on one bidirectional stream, each
after the previous answer arrived.

Output: {"code": "OK" | "PERMISSION_DENIED" | ..., "details": ..., "answers": [hex, ...],
"initial_metadata": {...}, "trailing_metadata": {...}}
"""

import argparse
import json
import os
import sys
import threading

import grpc


def metadata_dict(pairs):
    return {key: value if isinstance(value, str) else value.hex() for key, value in (pairs or [])}


def unary(channel, args, metadata):
    call_method = channel.unary_unary(args.method)
    try:
        answer, call = call_method.with_call(
            bytes.fromhex(args.request_hex), metadata=metadata, timeout=args.timeout
        )
    except grpc.RpcError as refused:
        return {
            "code": refused.code().name,
            "details": refused.details(),
            "answers": [],
            "initial_metadata": metadata_dict(refused.initial_metadata()),
            "trailing_metadata": metadata_dict(refused.trailing_metadata()),
        }
    return {
        "code": call.code().name,
        "details": call.details(),
        "answers": [answer.hex()],
        "initial_metadata": metadata_dict(call.initial_metadata()),
        "trailing_metadata": metadata_dict(call.trailing_metadata()),
    }


def streaming(channel, args, metadata):
    """Sends args.stream messages, each once the previous one was answered: the stream
    must stay a stream through the gateway, not be buffered to its end."""
    answered = threading.Semaphore(0)
    sent = {"n": 0}

    def requests():
        for i in range(args.stream):
            if i > 0 and not answered.acquire(timeout=args.timeout):
                return
            sent["n"] += 1
            yield bytes.fromhex(args.request_hex)

    call = channel.stream_stream(args.method)(requests(), metadata=metadata, timeout=args.timeout)
    answers = []
    try:
        for answer in call:
            answers.append(answer.hex())
            answered.release()
    except grpc.RpcError:
        pass
    return {
        "code": call.code().name,
        "details": call.details(),
        "answers": answers,
        "sent": sent["n"],
        "initial_metadata": metadata_dict(call.initial_metadata()),
        "trailing_metadata": metadata_dict(call.trailing_metadata()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the gateway's [[proxy]] listener (h2c)")
    parser.add_argument("--method", required=True, help="the full method, e.g. /pkg.Service/Method")
    parser.add_argument("--request-hex", default="", help="the request message, hex-encoded protobuf (default: empty)")
    parser.add_argument("--stream", type=int, default=0, help="send this many messages on one bidirectional stream")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    args = parser.parse_args()
    # A Steward access token, sent as `authorization: Bearer ...`; none: an anonymous call.
    token = os.environ.get("STEWARD_ACCESS_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(args.target) as channel:
        out = streaming(channel, args, metadata) if args.stream else unary(channel, args, metadata)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
