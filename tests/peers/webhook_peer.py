"""A webhook receiver built on a provider's own verifier, for tests/webhook.rs.

    python3 tests/peers/webhook_peer.py --scheme stripe|standard|slack|shopify --secret S

Verifies every POST as an integration of that provider does, with the
provider's library: stripe (stripe.Webhook.construct_event), standard
(standardwebhooks.Webhook.verify), slack (slack_sdk's SignatureVerifier);
Shopify ships no verifier, so its documented HMAC check (hmac, hashlib and
base64 from the standard library) stands in. Answers 401 to what the library
refuses, 200 to the rest, processes each delivery once by the scheme's
duplicate key, and counts it all: GET /stats. The library alone decides
accepted or refused; the peer only labels a refusal with its reason.

Prints "listening PORT" once ready. Exits when its standard input closes
(the test ended) or after --lifetime seconds, whichever comes first. A
missing package is named on stderr with how to install it (exit 3).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PACKAGES = {"stripe": "stripe", "standard": "standardwebhooks", "slack": "slack_sdk"}


def missing(package, error):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.stderr.write(
        f"the {package!r} package from PyPI is not installed ({error}): run .ci/run, "
        f"or pip install --target {os.path.join(here, 'python_modules')} {package}\n"
    )
    sys.exit(3)


class Refused(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def stripe_verifier(secret):
    try:
        import stripe
    except ImportError as e:
        missing("stripe", e)

    def verify(body, headers):
        header = headers.get("stripe-signature")
        try:
            event = stripe.Webhook.construct_event(body, header, secret)
        except stripe.SignatureVerificationError as e:
            text = str(e)
            if not header:
                raise Refused("missing_header")
            if "tolerance" in text:
                raise Refused("timestamp_outside_tolerance")
            if "Unable to extract" in text:
                raise Refused("malformed_header")
            if "expected scheme" in text:
                raise Refused("no_v1_signature")
            raise Refused("signature_mismatch")
        return event["id"], event["type"]

    return verify


def standard_verifier(secret):
    try:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    except ImportError as e:
        missing("standardwebhooks", e)
    wh = Webhook(secret)

    def verify(body, headers):
        try:
            payload = wh.verify(body, headers)
        except WebhookVerificationError as e:
            text = str(e)
            if "Missing" in text:
                raise Refused("missing_header")
            if "too old" in text or "too new" in text:
                raise Refused("timestamp_outside_tolerance")
            if "Invalid" in text:
                raise Refused("malformed_header")
            raise Refused("signature_mismatch")
        except ValueError:
            # A signature item without exactly one comma.
            raise Refused("malformed_header")
        return headers["webhook-id"], payload.get("type", "unknown")

    return verify


def slack_verifier(secret):
    try:
        from slack_sdk.signature import SignatureVerifier
    except ImportError as e:
        missing("slack_sdk", e)
    verifier = SignatureVerifier(secret)

    def verify(body, headers):
        try:
            ok = verifier.is_valid_request(body, headers)
        except ValueError:
            raise Refused("malformed_header")
        if not ok:
            ts = headers.get("x-slack-request-timestamp")
            if ts is None or headers.get("x-slack-signature") is None:
                raise Refused("missing_header")
            if abs(time.time() - int(ts)) > 60 * 5:
                raise Refused("timestamp_outside_tolerance")
            raise Refused("signature_mismatch")
        event = json.loads(body)
        return event["event_id"], event["event"]["type"]

    return verify


def shopify_verifier(secret):
    # As Shopify's docs show it (verify_webhook), with the stdlib only.
    def verify_webhook(data, hmac_header):
        digest = hmac.new(secret.encode("utf-8"), data, digestmod=hashlib.sha256).digest()
        computed_hmac = base64.b64encode(digest)
        return hmac.compare_digest(computed_hmac, hmac_header.encode("utf-8"))

    def verify(body, headers):
        header = headers.get("x-shopify-hmac-sha256")
        if header is None:
            raise Refused("missing_header")
        if not verify_webhook(body, header):
            raise Refused("signature_mismatch")
        return headers["x-shopify-webhook-id"], headers.get("x-shopify-topic", "unknown")

    return verify


VERIFIERS = {
    "stripe": stripe_verifier,
    "standard": standard_verifier,
    "slack": slack_verifier,
    "shopify": shopify_verifier,
}


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.received = 0
        self.accepted = 0
        self.processed = 0
        self.duplicates = 0
        self.rejected = {}
        self.errors = 0
        self.seen = set()

    def json(self):
        with self.lock:
            return {
                "received": self.received,
                "accepted": self.accepted,
                "processed": self.processed,
                "duplicates": self.duplicates,
                "rejected": dict(self.rejected),
                "rejected_total": sum(self.rejected.values()),
                "errors": self.errors,
            }


def serve(scheme, secret, lifetime):
    verify = VERIFIERS[scheme](secret)
    counts = Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as volley's VUs use it

        def log_message(self, *args):
            pass

        def answer(self, status, value):
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/stats":
                self.answer(200, counts.json())
            else:
                self.answer(404, {"error": "GET /stats"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with counts.lock:
                counts.received += 1
            try:
                key, _type = verify(body, headers)
            except Refused as r:
                with counts.lock:
                    counts.rejected[r.reason] = counts.rejected.get(r.reason, 0) + 1
                return self.answer(401, {"error": r.reason})
            except Exception as e:  # a bug here must show, not look like a refusal
                with counts.lock:
                    counts.errors += 1
                return self.answer(500, {"error": repr(e)})
            with counts.lock:
                counts.accepted += 1
                fresh = key not in counts.seen
                counts.seen.add(key)
                if fresh:
                    counts.processed += 1
                else:
                    counts.duplicates += 1
            self.answer(200, {"received": True, "duplicate": not fresh})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening {server.server_address[1]}", flush=True)

    def until_stdin_closes():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    time.sleep(lifetime)
    os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scheme", required=True, choices=sorted(VERIFIERS))
    p.add_argument("--secret", required=True)
    p.add_argument("--lifetime", type=float, default=300)
    a = p.parse_args()
    serve(a.scheme, a.secret, a.lifetime)


if __name__ == "__main__":
    main()
