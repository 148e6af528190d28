"""A webhook receiver for the notification tests: verifies every delivery with the
Standard Webhooks reference library (`standardwebhooks` from PyPI), an implementation
independent of floom's, and answers with the statuses it is told.

    python receiver.py KEYS_FILE PLAN

KEYS_FILE holds the signing keys (`whsec_...`), one a line; it is re-read for every
request, so a test can write it after subscribing. PLAN is a comma-separated list of
statuses to answer, one per request in order; the last one repeats.

Prints `listening PORT`, then one JSON line per request: the request number, whether
the signature verified (and with which key, by line), the webhook-id and -timestamp,
the parsed body, and the status answered.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

KEYS, PLAN = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
SEEN = 0


def verify(body, headers):
    try:
        with open(KEYS) as f:
            keys = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        keys = []
    for index, key in enumerate(keys):
        try:
            Webhook(key).verify(body, headers)
            return index
        except WebhookVerificationError:
            continue
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global SEEN
        SEEN += 1
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        key = verify(body, headers)
        status = PLAN[min(SEEN, len(PLAN)) - 1]
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        line = {
            "n": SEEN,
            "verified": key is not None,
            "key": key,
            "webhook_id": headers.get("webhook-id"),
            "webhook_timestamp": headers.get("webhook-timestamp"),
            "path": self.path,
            "body": payload,
            "answered": status,
        }
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()
        print(json.dumps(line), flush=True)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
