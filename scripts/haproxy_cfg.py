"""Print an HAProxy configuration for nodes of a cluster (used by `make cluster`, the tests and docs/deploy.md).

WebSocket connections go to any node (round robin over healthy ones): a Socket.IO client that opens
a WebSocket directly needs no stickiness, since every node delivers every event and resumes from
the shared log. HTTP long-polling keeps an Engine.IO session in one node's memory, so every request
of a polling session (and its upgrade to WebSocket) carries a cookie that pins it to that node.
Health checks use /ready; X-Forwarded-For names the client (set IMMUNE_TRUSTED_PROXIES to this proxy).

Usage: python scripts/haproxy_cfg.py --port 8000 127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8003
"""

from __future__ import annotations

import argparse

TEMPLATE = """\
global
    # Each connection takes two descriptors (client and node): raise it with the process's file limit.
    maxconn {maxconn}
    log stdout format raw local0 warning

defaults
    mode http
    log global
    option httplog
    option forwardfor
    # A connection refused by a node that just died is tried again on another one.
    retries 3
    option redispatch
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A WebSocket is a tunnel once upgraded: its idle limit is the Engine.IO heartbeat's business.
    timeout tunnel 1h
    timeout http-request 10s

frontend immune
    bind {bind}:{port}
    # A polling session (or its upgrade) names its Engine.IO sid, or arrives with the node cookie.
    acl socketio path_beg /socket.io/
    acl polling url_param(transport) -m str polling
    acl in_session url_param(sid) -m found
    use_backend sticky if socketio polling
    use_backend sticky if socketio in_session
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /ready
    http-check expect status 200
{servers}

backend sticky
    # The cookie pins a session; a client that keeps no cookies stays put by its address.
    balance source
    hash-type consistent
    cookie IMMUNE_NODE insert indirect nocache httponly
    option httpchk GET /ready
    http-check expect status 200
{sticky_servers}
"""


def render(port: int, nodes: list[str], bind: str = "127.0.0.1", maxconn: int = 8000) -> str:
    """The configuration for these `host:port` nodes behind `bind:port`."""
    check = "check inter 1s fall 2 rise 2"
    servers = "\n".join(f"    server node{i} {node} {check}" for i, node in enumerate(nodes, 1))
    sticky = "\n".join(f"    server node{i} {node} {check} cookie node{i}" for i, node in enumerate(nodes, 1))
    return TEMPLATE.format(bind=bind, port=port, servers=servers, sticky_servers=sticky, maxconn=maxconn)


def main() -> None:
    """Print the configuration for the nodes given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--maxconn", type=int, default=8000, help="client connections (needs twice the file limit)")
    parser.add_argument("nodes", nargs="+", help="host:port of each node")
    args = parser.parse_args()
    print(render(args.port, args.nodes, args.bind, args.maxconn), end="")


if __name__ == "__main__":
    main()
