"""The official python-socketio client against chatgate's Engine.IO / Socket.IO layers.

Usage: python engine_client.py URL TRANSPORT   (TRANSPORT: polling or websocket)
Exits non-zero with a message when something is off.
"""
import sys
import threading

import socketio

url, transport = sys.argv[1], sys.argv[2]
transports = ["polling", "websocket"] if transport == "polling" else ["websocket"]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


client = socketio.Client(reconnection=False)
got = {}
arrived = threading.Event()


@client.on("echo-back")
def on_echo_back(*args):
    got["echo"] = list(args)
    arrived.set()


@client.on("question")
def on_question(data):
    return {"answer": "from python", "to": data}


answered = threading.Event()


@client.on("answer-received")
def on_answer(data):
    got["answer"] = data
    answered.set()


client.connect(url, transports=transports, wait_timeout=5)
if transport == "websocket" and client.transport() != "websocket":
    fail(f"transport is {client.transport()}")

ack = client.call("sum", (1, "two", {"three": [3]}), timeout=5)
if ack != (1, "two", {"three": [3]}):
    fail(f"ack was {ack!r}")

client.emit("echo", ("héllo 👋", b"\x00\x01\xff"))
if not arrived.wait(5):
    fail("no echo-back")
if got["echo"] != ["héllo 👋", b"\x00\x01\xff"]:
    fail(f"echo-back was {got['echo']!r}")

client.emit("ask-me")
if not answered.wait(5):
    fail("no answer-received")
if "from python" not in got["answer"]:
    fail(f"server saw ack {got['answer']!r}")

client.disconnect()
print("ok")
