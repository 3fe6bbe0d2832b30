#!/usr/bin/env python3
"""EC2-faithful fault-injecting HTTP proxy in front of moto (server mode).

Why this exists: moto is a good stand-in for AWS state, but not for AWS *behaviour*.
Against moto, the Lambda would never see what real EC2 does to it:

  * moto never throttles; EC2 answers 503 ``RequestLimitExceeded`` once a token bucket runs dry;
  * moto ignores ``DryRun`` on route calls and performs the write anyway;
  * moto lets ``CreateRoute`` with an ENI target silently overwrite an existing route, where EC2
    answers 400 ``RouteAlreadyExists``;
  * moto never marks a route ``blackhole`` and has no propagated (VGW) routes;
  * moto ignores ``MaxResults``/``NextToken`` on ``DescribeRouteTables`` and answers everything at once;
  * moto drops the prefix list of a ``CreateRoute`` to a network interface (always fixed here);
  * moto stores a Gateway Load Balancer endpoint or an ODB network differently from how EC2
    reports them (``gatewayId``), which ``rewrite_routes`` can show;
  * moto never fails by itself (5xx, slow answers), so retry paths are never exercised;
  * moto is strongly consistent, where EC2's ``DescribeRouteTables`` may not show a route write
    for a while (``read_lag_s``).

It can also stage a race real deployments meet: Terraform destroying a route table, or a whole
VPC, between the function's read and its write (``delete_before_write``).

This proxy sits between the AWS SDK and moto on loopback, forwards everything transparently
(headers, body, status; EC2, SNS and any other service) and, when told so through a small JSON
control API under ``/_fault/``, emulates the EC2 behaviours above. It also records every client
call so a test can assert *how many* calls the Lambda made (the cost that matters under throttling).

Usage:
    python tests/fault_proxy.py --upstream http://127.0.0.1:MOTOPORT [--upstream-sqs URL]
        [--port 0] [--port-file PATH]

Prints ``listening on PORT`` (flushed) once ready, and writes PORT to --port-file if given.
Binds 127.0.0.1 only. Exits 0 on SIGTERM/SIGINT.

Control API (JSON in/out, same port):
    POST /_fault/config   replace the whole config (see CONFIG_KEYS below; absent key = feature off)
    GET  /_fault/config   the current config
    GET  /_fault/calls    {"counts", "throttled_counts", "throttled", "internal_reads", "buckets", "calls",
                           "deleted_tables", "deleted_vpcs"}
    POST /_fault/reset    clear calls, counts, config, write history and the deletion log

Config example (every key optional, absent = off):
    {"buckets": {"mutate": {"capacity": 50, "refill_per_sec": 5},
                 "read":   {"capacity": 100, "refill_per_sec": 20}},
     "bucket_scope": "action",            # or "category"
     "throttled_consumes_token": false,
     "dry_run": true, "dry_run_unauthorized": ["CreateRoute"],
     "strict_routes": true,
     "inject": [{"action": "CreateRoute", "status": 503, "code": "Unavailable", "message": "...",
                 "times": 2, "delay_ms": 0, "service": "ec2", "match": {"RouteTableId": "rtb-1"}},
                {"action": "DescribeRouteTables", "delay_ms": 500, "times": -1},
                {"action": "ReplaceRoute", "close": true}],
     "rewrite_routes": [{"route_table_id": "rtb-1", "destination": "10.1.0.0/16",
                         "state": "blackhole", "origin": "EnableVgwRoutePropagation"}],
     "page_size": 2,
     "read_lag_s": 1.5,
     "delete_before_write": [{"route_table_id": "rtb-1"}, {"vpc_id": "vpc-1"}]}

read_lag_s: every route write (CreateRoute, ReplaceRoute, DeleteRoute) the proxy forwards and
moto accepts becomes visible to DescribeRouteTables N seconds after it was made, writes of one
table in order: until then a table is answered with the routes it had before its oldest write
still hidden. Only its routeSet changes (associations, tags, other tables are moto's). Writes
made straight to moto, not through the proxy, are not delayed.

delete_before_write: each rule fires once, on the first route write that names a matching
RouteTableId. Before forwarding that write the proxy deletes in moto, with the client's own
credentials, the table (route_table_id; its associations first), or every non-main table of
the VPC, its ENIs, subnets and internet gateways and then the VPC itself with its main table
(vpc_id; an attached VPN gateway keeps the VPC and its main table). The write then goes to moto
unchanged, which answers like EC2 for a missing table: 400 InvalidRouteTableID.NotFound. A main
table is never deleted on its own (EC2 refuses that). /_fault/calls lists what went in
deleted_tables and deleted_vpcs, also on the call that fired the rule.

Order in which a client call meets the faults: throttling, injection, DryRun, delete_before_write,
strict routes, the prefix-list fix, then forwarding (route writes recorded for read_lag_s; on
the way back DescribeRouteTables gets read lag, then rewrite, then paging).

Standard library only, one file, so it runs from the project's .venv or any python3.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import ipaddress
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EC2_API_VERSION = "2016-11-15"

# Keys accepted by POST /_fault/config. Unknown keys are refused (400) so that a typo in a test
# does not silently turn a fault off.
CONFIG_KEYS = {
    "buckets",  # {"mutate": {"capacity", "refill_per_sec"}, "read": {...}}
    "bucket_scope",  # "action" (default, per-API like EC2) | "category" (one shared bucket each)
    "throttled_consumes_token",  # default false (see TokenBucket)
    "dry_run",  # true: answer DryRun=true like EC2 instead of forwarding
    "dry_run_unauthorized",  # ["CreateRoute", ...]: DryRun answers 403 UnauthorizedOperation
    "strict_routes",  # true: RouteAlreadyExists / ReplaceRoute-on-missing like EC2
    "inject",  # [{"action", "status"?, "code"?, "message"?, "times"?, "delay_ms"?, "match"?, ...}]
    "rewrite_routes",  # [{"route_table_id", "destination", "state"?, "origin"?, "gateway_id"?, "odb_network_arn"?}]
    "page_size",  # int: paginate DescribeRouteTables like EC2
    "read_lag_s",  # seconds > 0: DescribeRouteTables shows a route write only this long after it
    "delete_before_write",  # [{"route_table_id": "rtb-…"} | {"vpc_id": "vpc-…"}]: each fires once
}

# The calls that change a table's routes: what read_lag_s delays and delete_before_write races.
ROUTE_WRITES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")

# Hop-by-hop headers (RFC 7230 6.1) are per connection: never forward them in either direction.
# In particular moto (werkzeug) answers "Connection: close"; passing that on would make hyper drop
# its pooled keep-alive connection after every call.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
}


# --------------------------------------------------------------------------------------------
# Error bodies, in the exact shapes the AWS SDKs parse.
# --------------------------------------------------------------------------------------------

def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ec2_error_body(code: str, message: str, request_id: str) -> bytes:
    # EC2 is the odd one among Query services: <Response><Errors><Error>…</Errors><RequestID>,
    # (capital ID), not SNS's <ErrorResponse>. Same shape as moto's own EC2 errors, which the
    # Rust SDK (aws-smithy-xml ec2_query_errors) already parses.
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{_xml_escape(code)}</Code>"
        f"<Message>{_xml_escape(message)}</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    ).encode()


def query_error_body(code: str, message: str, request_id: str, status: int) -> bytes:
    # awsQuery services (SNS, SQS-query, IAM, STS...): <ErrorResponse>, Type Sender for 4xx and
    # Receiver for 5xx, as AWS does.
    err_type = "Sender" if status < 500 else "Receiver"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ErrorResponse><Error><Type>{err_type}</Type><Code>{_xml_escape(code)}</Code>"
        f"<Message>{_xml_escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


# Default code/message for an injected status when the rule names none (EC2's own wording).
DEFAULT_FAULTS = {
    500: ("InternalError", "An internal error has occurred."),
    503: ("Unavailable", "The server is overloaded and can't handle the request."),
    400: ("InvalidParameterValue", "Injected fault."),
}


# --------------------------------------------------------------------------------------------
# Token buckets (EC2 request-rate throttling).
# --------------------------------------------------------------------------------------------

class TokenBucket:
    """EC2's request token bucket: starts full, refills continuously, capped at capacity.

    By default a throttled request takes no token. EC2's throttling guide
    (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html) says "each request that you
    make removes one token", that past the bucket "the remaining requests ... fail", and that after
    emptying it "you can still make 20 requests per second" at the refill rate. That only holds
    if the failed requests took nothing, which is also how a token bucket works (a request passes
    only when a token is there). The guide never says it in so many words, so
    ``throttled_consumes_token: true`` switches to the pessimistic model (each throttled call
    puts the bucket further into debt, down to -capacity) to check that the caller's back-off
    does not depend on the kind reading.
    """

    def __init__(self, capacity: float, refill_per_sec: float, consume_on_throttle: bool):
        self.capacity = float(capacity)
        self.rate = float(refill_per_sec)
        self.tokens = float(capacity)
        self.stamp = time.monotonic()
        self.consume_on_throttle = consume_on_throttle
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            if self.consume_on_throttle:
                self.tokens = max(-self.capacity, self.tokens - 1.0)
            return False

    def level(self) -> float:
        """Tokens available now (for /_fault/calls; does not take any)."""
        with self.lock:
            return min(self.capacity, self.tokens + (time.monotonic() - self.stamp) * self.rate)


# EC2 groups its API into "mutating" and "non-mutating" actions for throttling.
READ_PREFIXES = ("Describe", "Get", "List")
MUTATE_PREFIXES = (
    "Create", "Replace", "Delete", "Modify", "Associate", "Disassociate", "Attach", "Detach",
    "Enable", "Disable", "Assign", "Unassign", "Reset", "Accept", "Reject",
)


def bucket_category(action: str) -> str | None:
    if action.startswith(READ_PREFIXES):
        return "read"
    if action.startswith(MUTATE_PREFIXES):
        return "mutate"
    return None  # e.g. RunInstances has its own (resource) buckets in EC2: left unmetered


# --------------------------------------------------------------------------------------------
# Small, byte-preserving XML surgery on moto's DescribeRouteTables answer.
#
# We do not re-serialise with ElementTree: that would rename the default namespace to ns0:
# prefixes and reorder nothing useful. Instead we cut the document at <item> boundaries.
# --------------------------------------------------------------------------------------------

_ITEM_TAG = re.compile(r"<(/?)item(\s*/)?>")


def top_level_items(doc: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the <item>…</item> elements directly inside doc[start:end] (nesting-aware)."""
    spans, depth, open_at = [], 0, None
    for m in _ITEM_TAG.finditer(doc, start, end):
        closing, selfclosing = m.group(1) == "/", m.group(2) is not None
        if selfclosing:
            if depth == 0:
                spans.append((m.start(), m.end()))
        elif not closing:
            if depth == 0:
                open_at = m.start()
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                spans.append((open_at, m.end()))
    return spans


def element_span(doc: str, tag: str, start: int = 0, end: int | None = None):
    """(content_start, content_end) of the first <tag>…</tag> in range, or None (also for <tag/>)."""
    end = len(doc) if end is None else end
    m = re.compile(rf"<{tag}>").search(doc, start, end)
    if not m:
        return None
    close = doc.find(f"</{tag}>", m.end(), end)
    return None if close < 0 else (m.end(), close)


def child_text(fragment: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>([^<]*)</{tag}>", fragment)
    return m.group(1) if m else None


def same_destination(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return a == b  # prefix list ids (pl-…)


def route_destination(route_item: str) -> str | None:
    for tag in ("destinationCidrBlock", "destinationIpv6CidrBlock", "destinationPrefixListId"):
        v = child_text(route_item, tag)
        if v is not None:
            return v
    return None


def set_child(fragment: str, tag: str, value: str) -> str:
    """Replace <tag>…</tag> in a flat route <item>, or add it before </item>."""
    new = f"<{tag}>{_xml_escape(value)}</{tag}>"
    pat = re.compile(rf"<{tag}>[^<]*</{tag}>|<{tag}\s*/>")
    if pat.search(fragment):
        return pat.sub(new, fragment, count=1)
    return fragment[: -len("</item>")] + new + "</item>"


def table_id_of(table: str) -> str | None:
    """routeTableId of one routeTableSet <item> (each association item names it too: skip those)."""
    return child_text(re.sub(r"<associationSet>.*?</associationSet>", "", table, flags=re.S), "routeTableId")


_ROUTE_SET = re.compile(r"<routeSet>.*?</routeSet>|<routeSet\s*/>", re.S)


def routeset_of_table(doc: str, table_id: str) -> str | None:
    """The whole <routeSet>…</routeSet> element of table_id in a DescribeRouteTables body."""
    rts = element_span(doc, "routeTableSet")
    for (a, b) in top_level_items(doc, *rts) if rts else []:
        if table_id_of(doc[a:b]) == table_id:
            m = _ROUTE_SET.search(doc, a, b)  # route items hold no nested routeSet: non-greedy is safe
            return m.group(0) if m else None
    return None


def replace_routesets(doc: str, routeset_for) -> str:
    """Swap the routeSet of each table for which routeset_for(table_id) gives one; the rest of the
    document (other tables, associations, tags, paging) stays byte for byte moto's."""
    rts = element_span(doc, "routeTableSet")
    if not rts:
        return doc
    out, pos = [], 0
    for (a, b) in top_level_items(doc, *rts):
        table = doc[a:b]
        old = routeset_for(table_id_of(table))
        if old is not None:
            table = _ROUTE_SET.sub(lambda _m: old, table, count=1)
        out.append(doc[pos:a])
        out.append(table)
        pos = b
    out.append(doc[pos:])
    return "".join(out)


def rewrite_route_tables(doc: str, rules: list[dict]) -> str:
    """Apply rewrite_routes rules to every route of every table in a DescribeRouteTables body."""
    rts = element_span(doc, "routeTableSet")
    if not rts or not rules:
        return doc
    out, pos = [], 0
    for (a, b) in top_level_items(doc, *rts):
        table = doc[a:b]
        table_id = table_id_of(table)
        mine = [r for r in rules if r.get("route_table_id") == table_id]
        if mine:
            rs = element_span(table, "routeSet")
            if rs:
                parts, p = [], 0
                for (ra, rb) in top_level_items(table, *rs):
                    route = table[ra:rb]
                    dest = route_destination(route)
                    for rule in mine:
                        if same_destination(dest, rule.get("destination")):
                            # A blackhole route keeps its target (e.g. the deleted ENI's id) and a
                            # propagated one carries origin EnableVgwRoutePropagation: only these
                            # two fields change, the rest of the route is what moto stored.
                            if rule.get("state"):
                                route = set_child(route, "state", rule["state"])
                            if rule.get("origin"):
                                route = set_child(route, "origin", rule["origin"])
                            # EC2 reports a Gateway Load Balancer endpoint (vpce-) and an ODB
                            # network in gatewayId; moto stores neither that way.
                            if rule.get("gateway_id"):
                                route = set_child(route, "gatewayId", rule["gateway_id"])
                            if rule.get("odb_network_arn"):
                                route = set_child(route, "odbNetworkArn", rule["odb_network_arn"])
                    parts.append(table[p:ra])
                    parts.append(route)
                    p = rb
                parts.append(table[p:])
                table = "".join(parts)
        out.append(doc[pos:a])
        out.append(table)
        pos = b
    out.append(doc[pos:])
    return "".join(out)


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def routes_of_table(xml_body: bytes, table_id: str) -> list[str] | None:
    """Destinations of table_id in a DescribeRouteTables answer; None if the table is absent."""
    root = ET.fromstring(xml_body)
    for el in root.iter():
        if local_name(el.tag) != "routeTableSet":
            continue
        for table in el:
            tid = next((c.text for c in table if local_name(c.tag) == "routeTableId"), None)
            if tid != table_id:
                continue
            dests = []
            for c in table:
                if local_name(c.tag) != "routeSet":
                    continue
                for route in c:
                    for f in route:
                        if local_name(f.tag) in ("destinationCidrBlock", "destinationIpv6CidrBlock",
                                                 "destinationPrefixListId"):
                            dests.append(f.text)
            return dests
    return None


def _children(el, tag: str):
    return [c for c in el if local_name(c.tag) == tag]


def _child_text(el, tag: str) -> str | None:
    found = _children(el, tag)
    return found[0].text if found else None


def set_item_ids(xml_body: bytes, set_tag: str, id_tag: str) -> list[str]:
    """The id_tag of each item directly in set_tag (e.g. subnetSet/subnetId) of an EC2 answer."""
    root = ET.fromstring(xml_body)
    return [i for s in root if local_name(s.tag) == set_tag
            for item in s if (i := _child_text(item, id_tag))]


def route_tables_info(xml_body: bytes) -> list[dict]:
    """Per table of a DescribeRouteTables answer: id, vpc_id, main, and the ids of its explicit
    (subnet or gateway) associations, which must go before the table can be deleted."""
    root = ET.fromstring(xml_body)
    tables = []
    for s in _children(root, "routeTableSet"):
        for item in s:
            assocs = [a for aset in _children(item, "associationSet") for a in aset]
            main = any(_child_text(a, "main") == "true" for a in assocs)
            explicit = [_child_text(a, "routeTableAssociationId") for a in assocs
                        if _child_text(a, "main") != "true"]
            tables.append({"id": _child_text(item, "routeTableId"), "vpc_id": _child_text(item, "vpcId"),
                           "main": main, "associations": [x for x in explicit if x]})
    return tables


# --------------------------------------------------------------------------------------------
# Shared state (config + call log), guarded by one lock.
# --------------------------------------------------------------------------------------------

def _host_port(url: str, flag: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit(f"{flag} must be http://host:port, got {url!r}")
    return u.hostname, u.port or 80


class State:
    def __init__(self, upstream: str, sqs_upstream: str | None = None):
        self.up_host, self.up_port = _host_port(upstream, "--upstream")
        # SQS on a moto of its own (--upstream-sqs): real SQS does not slow down when EC2 is
        # busy, but one moto process serving a write storm answered SendMessage in up to
        # 0.65 s (p99 0.5 s), past the function's bound on its hand-offs.
        self.sqs_up = _host_port(sqs_upstream, "--upstream-sqs") if sqs_upstream else None
        self.lock = threading.Lock()
        self.table_locks: dict[str, threading.Lock] = {}
        # Serialises delete_before_write: a write racing the one that fires a rule waits until the
        # deletion is done, so it meets the missing table too (and a rule cannot fire twice).
        self.delete_lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.config: dict = {}
            self.buckets: dict[str, TokenBucket] = {}
            self.inject: list[dict] = []
            self.calls: list[dict] = []
            self.counts: dict[str, int] = {}
            self.throttled_counts: dict[str, int] = {}
            self.internal_reads = 0
            # read_lag_s: per table, [monotonic time of the write, routeSet XML before it], in order.
            self.write_history: dict[str, list[list]] = {}
            self.delete_rules: list[dict] = []
            self.deleted_tables: list[str] = []
            self.deleted_vpcs: list[str] = []

    def set_config(self, cfg: dict):
        unknown = set(cfg) - CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}")
        scope = cfg.get("bucket_scope", "action")
        if scope not in ("action", "category"):
            raise ValueError("bucket_scope must be 'action' or 'category'")
        for cat, b in (cfg.get("buckets") or {}).items():
            if cat not in ("mutate", "read") or not {"capacity", "refill_per_sec"} <= set(b):
                raise ValueError("buckets: {'mutate'|'read': {'capacity': N, 'refill_per_sec': R}}")
        for rule in cfg.get("inject") or []:
            if "action" not in rule or ("status" not in rule and "delay_ms" not in rule and not rule.get("close")):
                raise ValueError("inject rule needs 'action' and one of 'status', 'delay_ms', 'close'")
        ps = cfg.get("page_size")
        if ps is not None and (not isinstance(ps, int) or ps < 1):
            raise ValueError("page_size must be a positive integer")
        validate_read_lag(cfg.get("read_lag_s"))
        validate_delete_rules(cfg.get("delete_before_write"))
        with self.lock:
            self.config = cfg
            # Buckets start full at config time; per-action buckets are created (full) on first use.
            self.buckets = {}
            # Private copies: 'times' counts down as rules fire.
            self.inject = [dict(r, times=r.get("times", 1)) for r in cfg.get("inject") or []]
            # Writes made under the previous config are not delayed by this one.
            self.write_history = {}
            self.delete_rules = [dict(r) for r in cfg.get("delete_before_write") or []]

    def bucket_for(self, action: str) -> TokenBucket | None:
        cat = bucket_category(action)
        spec = (self.config.get("buckets") or {}).get(cat) if cat else None
        if not spec:
            return None
        # Per EC2's guide, "each API is evaluated individually": CreateRoute and ReplaceRoute have
        # their own buckets, sized by category. "category" scope shares one bucket per category.
        key = action if self.config.get("bucket_scope", "action") == "action" else cat
        with self.lock:
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = TokenBucket(
                    spec["capacity"], spec["refill_per_sec"],
                    bool(self.config.get("throttled_consumes_token", False)))
            return b

    def take_injection(self, service: str, action: str, params: dict) -> dict | None:
        with self.lock:
            for rule in self.inject:
                if rule["action"] != action or rule["times"] == 0:
                    continue
                if rule.get("service") and rule["service"] != service:
                    continue
                if any(params.get(k) != str(v) for k, v in (rule.get("match") or {}).items()):
                    continue
                if rule["times"] > 0:
                    rule["times"] -= 1
                return dict(rule)
        return None

    def record(self, service, action, params) -> dict:
        entry = {"service": service, "action": action, "params": params, "status": None,
                 "throttled": False, "t": time.monotonic()}
        with self.lock:
            self.calls.append(entry)
            self.counts[action] = self.counts.get(action, 0) + 1
        return entry

    def mark_throttled(self, entry):
        with self.lock:
            entry["throttled"] = True
            a = entry["action"]
            self.throttled_counts[a] = self.throttled_counts.get(a, 0) + 1

    def table_lock(self, table_id: str) -> threading.Lock:
        with self.lock:
            return self.table_locks.setdefault(table_id, threading.Lock())

    # ---- read_lag_s ---------------------------------------------------------------------------

    def begin_write(self, table_id: str, routeset_before: str, lag_s: float) -> list:
        """Log a route write about to be forwarded. Logged before moto sees it, not after its 200:
        a DescribeRouteTables racing the write's answer must not see the write early."""
        now = time.monotonic()
        entry = [now, routeset_before]
        with self.lock:
            writes = self.write_history.setdefault(table_id, [])
            forget_visible(writes, now - lag_s)  # a table written often but never read stays small
            writes.append(entry)
        return entry

    def abort_write(self, table_id: str, entry: list):
        """The write failed: moto's state never changed, so there is nothing to hide."""
        with self.lock:
            writes = self.write_history.get(table_id, [])
            if any(w is entry for w in writes):
                writes.remove(entry)

    def lagged_routeset(self, table_id: str | None, lag_s: float) -> str | None:
        """The routeSet a read of table_id shows now, if some write to it is not visible yet:
        the table as it was before the oldest such write. Writes now visible are forgotten."""
        horizon = time.monotonic() - lag_s
        with self.lock:
            writes = self.write_history.get(table_id)
            if not writes:
                return None
            forget_visible(writes, horizon)
            return writes[0][1] if writes else None

    # ---- delete_before_write --------------------------------------------------------------

    def has_vpc_rules(self) -> bool:
        with self.lock:
            return any("vpc_id" in r for r in self.delete_rules)

    def delete_rule_may_match(self, table_id: str) -> bool:
        """Whether a rule left may fire for table_id (a vpc_id rule needs a look at its VPC)."""
        with self.lock:
            return any(r.get("route_table_id") == table_id or "vpc_id" in r for r in self.delete_rules)

    def take_delete_rule(self, table_id: str, vpc_id: str | None) -> dict | None:
        """The first rule matching this table (by id, or by its VPC), removed: each fires once."""
        with self.lock:
            for i, rule in enumerate(self.delete_rules):
                if rule.get("route_table_id") == table_id or (vpc_id and rule.get("vpc_id") == vpc_id):
                    return self.delete_rules.pop(i)
        return None

    def note_deleted(self, entry: dict | None, tables: list[str], vpcs: list[str]):
        with self.lock:
            self.deleted_tables.extend(tables)
            self.deleted_vpcs.extend(vpcs)
            if entry is not None:
                entry["deleted_tables"] = list(tables)
                entry["deleted_vpcs"] = list(vpcs)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "counts": dict(self.counts),
                "throttled_counts": dict(self.throttled_counts),
                "throttled": sum(self.throttled_counts.values()),
                "internal_reads": self.internal_reads,
                "buckets": {k: round(b.level(), 3) for k, b in self.buckets.items()},
                "calls": [dict(c) for c in self.calls],
                "deleted_tables": list(self.deleted_tables),
                "deleted_vpcs": list(self.deleted_vpcs),
            }


def forget_visible(writes: list[list], horizon: float):
    """Drop the writes made at or before horizon: reads show them now, nothing to hide."""
    while writes and writes[0][0] <= horizon:
        writes.pop(0)


def validate_read_lag(lag):
    # bool is an int in Python: `true` must not read as a 1 s lag.
    if lag is not None and (isinstance(lag, bool) or not isinstance(lag, (int, float))
                            or not math.isfinite(lag) or lag <= 0):
        raise ValueError(f"read_lag_s must be a positive number of seconds, got {lag!r}")


def validate_delete_rules(rules):
    if rules is None:
        return
    shape = "delete_before_write: a list of {'route_table_id': 'rtb-…'} or {'vpc_id': 'vpc-…'}"
    if not isinstance(rules, list):
        raise ValueError(f"{shape}, got {rules!r}")
    prefixes = {"route_table_id": "rtb-", "vpc_id": "vpc-"}
    for rule in rules:
        if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in prefixes:
            raise ValueError(f"{shape} (one key per rule), got {rule!r}")
        key, value = next(iter(rule.items()))
        if not isinstance(value, str) or not value.startswith(prefixes[key]):
            raise ValueError(f"delete_before_write: {key} must be a '{prefixes[key]}…' id, got {value!r}")


# --------------------------------------------------------------------------------------------
# Request handling.
# --------------------------------------------------------------------------------------------

_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")


class Reply(Exception):
    """Short-circuit: answer the client with this status/body instead of forwarding."""

    def __init__(self, status: int, body: bytes, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with keep-alive: hyper (Rust SDK) pools connections. Every answer carries an exact
    # Content-Length and we never send "Connection: close" unless the client asked for it.
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy"
    state: State  # set on the class by main()
    verbose = False
    # No idle timeout: closing an idle pooled connection races with hyper reusing it
    # ("connection closed before message completed"), a failure real AWS would not cause here.
    timeout = None

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("fault_proxy: " + (fmt % args) + "\n")

    # ---- plumbing -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | dict, reason: str | None = None):
        self.send_response_only(status, reason)
        items = headers.items() if isinstance(headers, dict) else headers
        for k, v in items:
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, obj):
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _upstream(self, method: str, path: str, headers, body: bytes):
        up_host, up_port = self.state.up_host, self.state.up_port
        if self.state.sqs_up and self._signed_for() == "sqs":
            up_host, up_port = self.state.sqs_up
        conn = http.client.HTTPConnection(up_host, up_port, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            has_host = False
            for k, v in headers:
                lk = k.lower()
                if lk in HOP_BY_HOP or lk in ("content-length", "expect"):
                    continue
                has_host |= lk == "host"
                conn.putheader(k, v)
            if not has_host:
                conn.putheader("Host", f"{up_host}:{up_port}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _error(self, service: str, status: int, code: str, message: str) -> Reply:
        rid = str(uuid.uuid4())
        if self.headers.get("X-Amz-Target"):  # JSON protocols (DynamoDB): a JSON error body
            body = json.dumps({"__type": code, "message": message}).encode()
            return Reply(status, body, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": rid})
        body = (ec2_error_body(code, message, rid) if service == "ec2"
                else query_error_body(code, message, rid, status))
        return Reply(status, body, {"Content-Type": "text/xml;charset=UTF-8", "x-amzn-RequestId": rid})

    # ---- entry points ---------------------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def _dispatch(self):
        body = self._read_body()
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._json(403, {"error": "loopback only"})
            return
        if self.path.startswith("/_fault/"):
            self._control(body)
            return
        try:
            self._proxy(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # never leave a pooled client hanging: answer something
            self._send(502, f"fault_proxy: {type(e).__name__}: {e}\n".encode(), {"Content-Type": "text/plain"})

    def _control(self, body: bytes):
        st = self.state
        path = self.path.split("?", 1)[0]
        try:
            if path == "/_fault/config" and self.command == "POST":
                st.set_config(json.loads(body or b"{}"))
                self._json(200, {"ok": True, "config": st.config})
            elif path == "/_fault/config" and self.command == "GET":
                self._json(200, st.config)
            elif path == "/_fault/calls" and self.command == "GET":
                self._json(200, st.snapshot())
            elif path == "/_fault/reset" and self.command == "POST":
                st.reset()
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": f"no control endpoint {self.command} {path}"})
        except (ValueError, TypeError, AttributeError) as e:
            self._json(400, {"error": str(e)})

    # ---- the proxy proper -----------------------------------------------------------------

    def _signed_for(self) -> str | None:
        """The service of the request's SigV4 scope."""
        m = _SCOPE.search(self.headers.get("Authorization") or "")
        return m.group(2) if m else None

    def _identify(self, body: bytes) -> tuple[str, str | None, dict]:
        """(service, action, params) from SigV4 scope + Query-protocol form body."""
        params: dict[str, str] = {}
        ctype = (self.headers.get("Content-Type") or "").lower()
        if self.command == "POST" and "x-www-form-urlencoded" in ctype:
            params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif "?" in self.path:
            params = dict(urllib.parse.parse_qsl(self.path.split("?", 1)[1], keep_blank_values=True))
        service = self._signed_for()
        if service is None:  # unsigned: recognise EC2 by its API version
            service = "ec2" if params.get("Version") == EC2_API_VERSION else "unknown"
        action = params.get("Action")
        if action is None and self.headers.get("X-Amz-Target"):  # JSON protocols
            action = self.headers["X-Amz-Target"].rsplit(".", 1)[-1]
        # REST protocols name the operation by path: Lambda's Invoke (the function's hand-off).
        invoke = re.match(r"^/2015-03-31/functions/([^/?]+)/invocations", self.path)
        if action is None and invoke:
            action = "Invoke"
            params = {"FunctionName": urllib.parse.unquote(invoke.group(1)),
                      "InvocationType": self.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                      "Payload": body.decode("utf-8", "replace")}
        return service, action, params

    def _proxy(self, body: bytes):
        st = self.state
        service, action, params = self._identify(body)
        entry = st.record(service, action, params) if action else None
        try:
            status, reason, headers, rbody = self._handle(service, action, params, body, entry)
        except Reply as r:
            status, reason, headers, rbody = r.status, None, r.headers, r.body
        if entry is not None:
            entry["status"] = status
        if status is None:  # injected connection drop
            self.close_connection = True
            return
        self._send(status, rbody, headers, reason)

    def _handle(self, service, action, params, body, entry):
        st, cfg = self.state, self.state.config
        ec2 = service == "ec2"

        # 1. Throttling comes first: EC2 rejects before looking at the request (even DryRun).
        if ec2 and action:
            bucket = st.bucket_for(action)
            if bucket is not None and not bucket.take():
                st.mark_throttled(entry)
                raise self._error(service, 503, "RequestLimitExceeded", "Request limit exceeded.")

        # 2. Injected faults / delays (any service).
        if action:
            rule = st.take_injection(service, action, params)
            if rule:
                if rule.get("delay_ms"):
                    time.sleep(rule["delay_ms"] / 1000.0)
                if rule.get("close"):
                    return None, None, [], b""
                if rule.get("status"):
                    code, msg = DEFAULT_FAULTS.get(rule["status"], ("InternalError", "Injected fault."))
                    raise self._error(service, int(rule["status"]), rule.get("code", code), rule.get("message", msg))

        # 3. DryRun: EC2 checks permissions and answers 412 DryRunOperation without acting.
        #    moto ignores DryRun on route calls and performs the write.
        if ec2 and cfg.get("dry_run") and params.get("DryRun", "").lower() == "true":
            if action in (cfg.get("dry_run_unauthorized") or []):
                raise self._error(service, 403, "UnauthorizedOperation",
                                  "You are not authorized to perform this operation.")
            raise self._error(service, 412, "DryRunOperation",
                              "Request would have succeeded, but DryRun flag is set.")

        # 4. Route writes: delete_before_write, strict routes, the prefix-list fix, read lag.
        if ec2 and action in ROUTE_WRITES and params.get("RouteTableId"):
            return self._route_write(service, action, params, body, entry)

        # 5. Forward, then dress DescribeRouteTables like EC2 would answer it.
        if (ec2 and action == "DescribeRouteTables" and self.command == "POST"
                and (cfg.get("page_size") or cfg.get("rewrite_routes") or cfg.get("read_lag_s"))):
            return self._describe_route_tables(service, params, body)
        return self._forward(body)

    def _route_write(self, service, action, params, body, entry):
        cfg, table = self.state.config, params["RouteTableId"]
        if cfg.get("delete_before_write"):
            self._delete_before_write(table, entry)
        # moto lets CreateRoute with an ENI target overwrite any existing route of that
        # destination, even the table's `local` route: strict_routes checks first, as EC2 does.
        strict = cfg.get("strict_routes") and action in ("CreateRoute", "ReplaceRoute")
        # A DryRun changes nothing on EC2, so there is no write to hide (when dry_run is off moto
        # performs it anyway; that write shows at once).
        lag = cfg.get("read_lag_s") and params.get("DryRun", "").lower() != "true"
        if not (strict or lag):
            return self._write_upstream(action, params, body)
        # Serialised per table so that read + check + write is atomic: racing creates behave like
        # EC2 (one wins) and each write's "before" snapshot is the state the previous one left.
        with self.state.table_lock(table):
            current = self._read_table(table)
            if strict:
                self._check_route(service, action, params, current)
            before = routeset_of_table(current.decode("utf-8"), table) if lag and current else None
            if before is None:  # unknown table: moto's own error follows, nothing to delay
                return self._write_upstream(action, params, body)
            pending = self.state.begin_write(table, before, cfg["read_lag_s"])
            reply = self._write_upstream(action, params, body)
            if reply[0] != 200:
                self.state.abort_write(table, pending)
            return reply

    def _write_upstream(self, action, params, body):
        # moto 5.2.5 drops the prefix list of a CreateRoute that names a network interface (its
        # create_route looks the list up only when no ENI is given), so the route it stores has
        # no destination. EC2 stores it as asked: create the route without its target, then
        # point it at the ENI (moto's ReplaceRoute keeps the prefix list).
        if (action == "CreateRoute" and params.get("DestinationPrefixListId")
                and params.get("NetworkInterfaceId") and params.get("DryRun", "").lower() != "true"):
            return self._create_prefix_list_route(params)
        return self._forward(body)

    def _create_prefix_list_route(self, params):
        hdrs = [(k, v) for k, v in self.headers.items() if k.lower() not in ("content-length",)]
        created = {k: v for k, v in params.items() if k != "NetworkInterfaceId"}
        reply = self._upstream(self.command, self.path, hdrs, urllib.parse.urlencode(created).encode())
        if reply[0] != 200:
            return reply
        replaced = dict(params, Action="ReplaceRoute")
        status, reason, headers, body = self._upstream(
            self.command, self.path, hdrs, urllib.parse.urlencode(replaced).encode())
        if status != 200:
            return status, reason, headers, body
        return reply

    def _forward(self, body: bytes):
        return self._upstream(self.command, self.path, self.headers.items(), body)

    def _internal_ec2(self, params: dict) -> tuple[int, bytes]:
        """One EC2 call of the proxy's own to moto, with the client's credentials scope (moto keys
        its state on the account they name). Not recorded as a client call, never throttled."""
        q = urllib.parse.urlencode({"Version": EC2_API_VERSION, **params})
        hdrs = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
        if self.headers.get("Authorization"):
            hdrs.append(("Authorization", self.headers["Authorization"]))
        if self.headers.get("X-Amz-Date"):
            hdrs.append(("X-Amz-Date", self.headers["X-Amz-Date"]))
        if params["Action"].startswith(READ_PREFIXES):
            with self.state.lock:
                self.state.internal_reads += 1
        status, _, _, rbody = self._upstream("POST", "/", hdrs, q.encode())
        return status, rbody

    def _read_table(self, table_id: str) -> bytes | None:
        """moto's DescribeRouteTables answer for one table, or None (unknown table etc.)."""
        status, rbody = self._internal_ec2({"Action": "DescribeRouteTables", "RouteTableId.1": table_id})
        return rbody if status == 200 else None

    def _check_route(self, service, action, params, current: bytes | None):
        table_id = params["RouteTableId"]
        dest = (params.get("DestinationCidrBlock") or params.get("DestinationIpv6CidrBlock")
                or params.get("DestinationPrefixListId"))
        if not dest or current is None:
            return  # missing parameter, unknown table etc.: moto's own error is the right answer
        dests = routes_of_table(current, table_id)
        if dests is None:
            return
        exists = any(same_destination(d, dest) for d in dests)
        if action == "CreateRoute" and exists:
            # EC2 refuses to create over an existing destination whatever the target (moto
            # overwrites when the target is an ENI). Message as EC2 writes it, full stop included.
            raise self._error(service, 400, "RouteAlreadyExists", f"The route identified by {dest} already exists.")
        if action == "ReplaceRoute" and not exists:
            # Real EC2 answers InvalidParameterValue here, not InvalidRoute.NotFound (which is
            # DeleteRoute's code): checked against AWS by moto's maintainers, getmoto/moto#6425.
            raise self._error(service, 400, "InvalidParameterValue",
                              f"There is no route defined for '{dest}' in the route table. Use CreateRoute instead.")

    def _describe_route_tables(self, service, params, body):
        cfg = self.state.config
        page_size = cfg.get("page_size")
        max_results = params.get("MaxResults")
        if page_size and max_results is not None:
            # EC2's documented range for DescribeRouteTables MaxResults is 5..100.
            if not max_results.isdigit() or not 5 <= int(max_results) <= 100:
                raise self._error(service, 400, "InvalidParameterValue",
                                  f"Value ( {max_results} ) for parameter maxResults is invalid. "
                                  "Expecting a value between 5 and 100.")
        # moto ignores MaxResults/NextToken: ask it for everything, page here.
        fwd = {k: v for k, v in params.items() if k not in ("MaxResults", "NextToken")}
        fwd_body = urllib.parse.urlencode(fwd).encode()
        status, reason, headers, rbody = self._upstream(self.command, self.path, self.headers.items(), fwd_body)
        if status != 200:
            return status, reason, headers, rbody
        doc = rbody.decode("utf-8")
        lag = cfg.get("read_lag_s")
        if lag:
            # Before the rewrite, so that rewrite_routes dresses the lagged routes as well.
            doc = replace_routesets(doc, lambda table_id: self.state.lagged_routeset(table_id, lag))
        doc = rewrite_route_tables(doc, cfg.get("rewrite_routes") or [])
        if page_size:
            doc = self._paginate(service, doc, params, fwd, page_size, max_results)
        return status, reason, headers, doc.encode("utf-8")

    # ---- delete_before_write --------------------------------------------------------------

    def _delete_before_write(self, table_id: str, entry):
        st = self.state
        with st.delete_lock:
            if not st.delete_rule_may_match(table_id):
                return  # no internal read for writes no rule is about
            current = self._read_table(table_id)
            info = route_tables_info(current) if current else []
            vpc_id = info[0]["vpc_id"] if info else None
            rule = st.take_delete_rule(table_id, vpc_id if st.has_vpc_rules() else None)
            if rule is None:
                return
            if "route_table_id" in rule:
                tables, vpcs = ([table_id] if info and self._delete_table(info[0]) else []), []
            else:
                tables, vpcs = self._delete_vpc(vpc_id)
            st.note_deleted(entry, tables, vpcs)

    def _delete_table(self, table: dict) -> bool:
        # EC2 refuses to delete a main table (it goes only with its VPC: use a vpc_id rule);
        # moto would delete it, leaving a VPC without one.
        if table["main"]:
            return False
        for assoc in table["associations"]:  # DeleteRouteTable refuses an associated table
            self._internal_ec2({"Action": "DisassociateRouteTable", "AssociationId": assoc})
        status, _ = self._internal_ec2({"Action": "DeleteRouteTable", "RouteTableId": table["id"]})
        return status == 200

    def _delete_vpc(self, vpc_id: str) -> tuple[list[str], list[str]]:
        """What `terraform destroy` of a VPC module leaves: nothing. Returns (tables, vpcs) deleted."""
        by_vpc = {"Filter.1.Name": "vpc-id", "Filter.1.Value.1": vpc_id}
        status, body = self._internal_ec2({"Action": "DescribeRouteTables", **by_vpc})
        tables = route_tables_info(body) if status == 200 else []
        deleted = [t["id"] for t in tables if self._delete_table(t)]
        # What else blocks DeleteVpc. moto itself checks only subnets, other route tables and VPN
        # gateways, but EC2 refuses a subnet with ENIs and a VPC with an internet gateway. An ENI
        # still attached to an instance stays (its DeleteNetworkInterface fails; moto then deletes
        # the subnet anyway). An attached VPN gateway is not handled: DeleteVpc then fails and the
        # VPC stays, without its custom tables, which is what the race is about.
        for eni in self._ids({"Action": "DescribeNetworkInterfaces", **by_vpc},
                             "networkInterfaceSet", "networkInterfaceId"):
            self._internal_ec2({"Action": "DeleteNetworkInterface", "NetworkInterfaceId": eni})
        for subnet in self._ids({"Action": "DescribeSubnets", **by_vpc}, "subnetSet", "subnetId"):
            self._internal_ec2({"Action": "DeleteSubnet", "SubnetId": subnet})
        for igw in self._ids({"Action": "DescribeInternetGateways", "Filter.1.Name": "attachment.vpc-id",
                              "Filter.1.Value.1": vpc_id}, "internetGatewaySet", "internetGatewayId"):
            self._internal_ec2({"Action": "DetachInternetGateway", "InternetGatewayId": igw, "VpcId": vpc_id})
            self._internal_ec2({"Action": "DeleteInternetGateway", "InternetGatewayId": igw})
        status, _ = self._internal_ec2({"Action": "DeleteVpc", "VpcId": vpc_id})
        if status != 200:
            return deleted, []
        # The main table went with the VPC.
        return deleted + [t["id"] for t in tables if t["main"]], [vpc_id]

    def _ids(self, params: dict, set_tag: str, id_tag: str) -> list[str]:
        status, body = self._internal_ec2(params)
        return set_item_ids(body, set_tag, id_tag) if status == 200 else []

    def _paginate(self, service, doc, params, fwd, page_size, max_results):
        # The token binds the query (filters, ids) so a token from another query is refused,
        # as EC2 does; it carries the offset into moto's (stable, insertion-ordered) answer.
        qhash = hashlib.sha256(json.dumps(sorted(fwd.items())).encode()).hexdigest()[:16]
        offset = 0
        if params.get("NextToken"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(params["NextToken"].encode()))
                if tok["q"] != qhash:
                    raise ValueError
                offset = int(tok["o"])
            except (ValueError, KeyError, TypeError):
                raise self._error(service, 400, "InvalidPaginationToken",
                                  "The specified pagination token is not valid or is expired.") from None
        size = min(page_size, int(max_results)) if max_results else page_size
        rts = element_span(doc, "routeTableSet")
        if not rts:
            return doc
        items = top_level_items(doc, *rts)
        page = items[offset: offset + size]
        inner = "".join(doc[a:b] for a, b in page)
        tail = ""
        if offset + size < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"o": offset + size, "q": qhash}).encode()).decode()
            tail = f"<nextToken>{token}</nextToken>"
        close_end = rts[1] + len("</routeTableSet>")
        return doc[: rts[0]] + inner + "</routeTableSet>" + tail + doc[close_end:]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # ~20 SDK clients may connect at once; the default backlog of 5 would refuse some.
    request_queue_size = 128

    def get_request(self):
        # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
        # client's delayed ACK on a kept-alive connection (~40 ms a call).
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="moto server, e.g. http://127.0.0.1:5000")
    ap.add_argument("--upstream-sqs", help="a moto server for SQS alone (default: --upstream)")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)

    Handler.state = State(args.upstream, args.upstream_sqs)
    Handler.verbose = args.verbose
    server = Server(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    worker.start()

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on {port}", flush=True)

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
