#!/usr/bin/env python3
"""The benchmark's app: one replica's process, the same program for every
system except for how it receives.

    app.py webhook              serve hearsay's webhook (standard library)
    app.py stream HOST:PORT     read hearsay's subscription stream (standard library)
    app.py redis HOST:PORT CHANNEL   SUBSCRIBE with redis-py
    app.py nats HOST:PORT SUBJECT    subscribe with nats-py

It prints one line when it is ready to receive (`ready`, or `ready PORT`
for the webhook), then one line per event as it arrives: the event's id
and CLOCK_MONOTONIC in nanoseconds, taken when the event reached this
process (the harness reads the same clock). What an app would do with its
cache is left out: every system pays for that alike.
"""
import json
import sys
import time

out = sys.stdout


def arrived(ids, at):
    out.write("".join(f"{i} {at}\n" for i in ids))
    out.flush()


def webhook():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            at = time.monotonic_ns()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrived([e["id"] for e in json.loads(body)], at)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("ready", server.server_address[1], flush=True)
    server.serve_forever()


def stream(api):
    import http.client

    host, port = api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", "/v1/subscribe", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"subscribe: {resp.status} {resp.read(200)!r}")
    print("ready", flush=True)
    for raw in resp:
        if raw.startswith(b"id:"):
            arrived([raw[3:].strip().decode()], time.monotonic_ns())


def redis_sub(addr, channel):
    import redis

    host, port = addr.rsplit(":", 1)
    p = redis.Redis(host=host, port=int(port)).pubsub()
    p.subscribe(channel)
    for m in p.listen():
        at = time.monotonic_ns()
        if m["type"] == "subscribe":
            print("ready", flush=True)
        elif m["type"] == "message":
            arrived([m["data"].decode()], at)


def nats_sub(addr, subject):
    import asyncio

    import nats

    async def main():
        async def got(msg):
            arrived([msg.data.decode()], time.monotonic_ns())

        nc = await nats.connect(f"nats://{addr}")
        await nc.subscribe(subject, cb=got)
        await nc.flush()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"webhook": webhook, "stream": stream, "redis": redis_sub, "nats": nats_sub}[mode](*args)
