#!/usr/bin/env python3
"""One process, one hearsay stream: prints every event it gets, one
CloudEvent per line, and keeps its Last-Event-ID across reconnects.
Standard library only. HEARSAY_API defaults to 127.0.0.1:7070."""
import http.client
import json
import os
import sys
import time

API = os.environ.get("HEARSAY_API", "127.0.0.1:7070")


def handle(event):
    # Your cache goes here: drop data["keys"] of data["cache"], or
    # everything on a dev.hearsay.flush.
    print(json.dumps(event), flush=True)


def main():
    host, port = API.rsplit(":", 1)
    last_id = None
    while True:
        # Keepalives arrive every 15 s, so a minute of silence is a dead stream.
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            conn.request("GET", "/v1/subscribe", headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise OSError(f"{resp.status}: {resp.read(200)!r}")
            print("stream", resp.getheader("Hearsay-Stream"), file=sys.stderr, flush=True)
            data = []
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and data:
                    event = json.loads("\n".join(data))
                    data = []
                    handle(event)
                    last_id = event["id"]
        except (OSError, http.client.HTTPException) as e:
            print("stream broke:", e, file=sys.stderr, flush=True)
        finally:
            conn.close()
        time.sleep(1)


if __name__ == "__main__":
    main()
