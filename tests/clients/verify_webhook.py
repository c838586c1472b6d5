"""Checks a delivery's signature with the Standard Webhooks reference library (an implementation
independent of chatgate's and of the Rust test's).

Usage: python verify_webhook.py SECRET ID TIMESTAMP SIGNATURE BODY_FILE
Exits 0 and prints the verified payload if the signature is valid, non-zero otherwise."""
import json
import sys
import time

from standardwebhooks.webhooks import Webhook

secret, msg_id, timestamp, signature, body_file = sys.argv[1:6]
body = open(body_file, "rb").read()
headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
payload = Webhook(secret).verify(body, headers)
print(json.dumps(payload, sort_keys=True))
# A tampered body must fail.
try:
    Webhook(secret).verify(body + b" ", headers)
except Exception:
    pass
else:
    sys.exit("a tampered body verified")
