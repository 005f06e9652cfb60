"""An app that receives hearsay's webhook and parses every event with the
CloudEvents Python SDK (PyPI `cloudevents`), as a user's app would.

Binds 127.0.0.1:0 and writes its port to the ready file. For each POST it
checks the Content-Type, reads the body as a JSON batch (an array), and
parses each element with the SDK's structured-mode JSON format, which
validates the required and optional attributes. Each request becomes one
line of JSON in the output file:
{"content_type": ..., "events": [{"id", "source", "type", "time", "data"}],
 "error": null | "..."}. It answers 204 when every event parsed, else 400.

usage: cloudevents_app.py READY_FILE OUT_FILE
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

BATCH = "application/cloudevents-batch+json"


def parse(body):
    batch = json.loads(body)
    if not isinstance(batch, list):
        raise ValueError("a batch must be a JSON array")
    events = []
    for element in batch:
        event = JSONFormat().read(CloudEvent, json.dumps(element).encode())
        time = event.get_time()
        if time is not None and time.tzinfo is None:
            raise ValueError(f"time without a zone: {time}")
        events.append(
            {
                "id": event.get_id(),
                "source": event.get_source(),
                "type": event.get_type(),
                "specversion": event.get_specversion(),
                "time": None if time is None else time.isoformat(),
                "datacontenttype": event.get_datacontenttype(),
                "data": event.get_data(),
            }
        )
    return events


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type")
        record = {"content_type": content_type, "events": [], "error": None}
        try:
            if content_type != BATCH:
                raise ValueError(f"Content-Type {content_type!r}, not {BATCH}")
            record["events"] = parse(body)
        except Exception as e:  # every failure is recorded and answered 400
            record["error"] = f"{type(e).__name__}: {e}"
        with open(self.server.out, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        self.send_response(400 if record["error"] else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    ready, out = sys.argv[1], sys.argv[2]
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.out = out
    with open(ready + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(ready + ".tmp", ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
