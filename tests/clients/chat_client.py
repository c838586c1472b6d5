"""The seed's chat with the official python-socketio client: a tutor and a tutee chat.

Usage: python chat_client.py URL
"""
import sys
import threading

import socketio

url = sys.argv[1]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Peer:
    def __init__(self):
        self.client = socketio.Client(reconnection=False)
        self.events = {}
        self.arguments = {}
        self.arrived = threading.Condition()
        self.client.on("*", self.record)

    def record(self, event, *args):
        with self.arrived:
            self.events.setdefault(event, []).append(args[0] if args else None)
            self.arguments.setdefault(event, []).append(args)
            self.arrived.notify_all()

    def wait(self, event, count=1, timeout=5):
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.events.get(event, [])) >= count, timeout)
        if not ok:
            fail(f"no {event} (have {self.events})")
        return self.events[event][count - 1]


tutor, tutee = Peer(), Peer()
tutor.client.connect(url, transports=["websocket"], wait_timeout=5)
tutee.client.connect(url, transports=["websocket"], wait_timeout=5)

joined = tutor.client.call("join-chat", {"eventid": 101, "userid": 1, "role": "tutor"}, timeout=5)
if joined != {"eventid": 101, "member_count": 1, "role": "tutor"}:
    fail(f"tutor join ack {joined!r}")
if tutor.wait("chat-history") != {"eventid": 101, "messages": [], "has_more": False, "read_receipts": []}:
    fail("chat-history after the join")
tutee.client.emit("join-chat", {"eventid": 101, "userid": 2, "role": "tutee"})
if tutee.wait("chat-joined")["member_count"] != 2:
    fail("tutee member_count")
if tutor.wait("user-joined-chat") != {"userid": 2, "role": "tutee", "member_count": 2}:
    fail("user-joined-chat")

tutee.client.emit("send-message", {"message": "Bonjour 👋", "eventid": 101})
got = tutor.wait("receive-message")
if got["message"] != "Bonjour 👋" or got["sender_name"] != "Alan Turing" or got["role"] != "tutee":
    fail(f"receive-message {got!r}")
if tutee.wait("receive-message") != got:
    fail("the sender's copy differs")
if not isinstance(got.get("id"), int) or got["id"] <= 0:
    fail(f"receive-message id {got!r}")
# Connection state recovery is on by default: the offset (the message's id, as a string) comes as
# a second argument, which a python-socketio handler takes with *args (docs/PROTOCOL.md).
if tutor.arguments["receive-message"][0] != (got, str(got["id"])):
    fail(f"receive-message arguments {tutor.arguments['receive-message'][0]!r}")

tutor.client.emit("typing", {"is_typing": True})
if tutee.wait("user-typing") != {"userid": 1, "role": "tutor", "is_typing": True}:
    fail("user-typing")

tutee.client.emit("send-message", {"message": ""})
if tutee.wait("chat-error") != {"message": "Empty message"}:
    fail("Empty message error")

# Reactions and read receipts: the ack and the others' broadcast agree.
reaction = tutor.client.call(
    "react-message", {"eventid": 101, "message_id": got["id"], "emoji": "👏", "action": "add"}, timeout=5
)
if reaction.get("counts") != {"👏": 1} or tutee.wait("message-reaction") != reaction:
    fail(f"message-reaction {reaction!r}")
mark = tutor.client.call("mark-read", {"eventid": 101, "userid": 1, "message_id": got["id"]}, timeout=5)
if mark.get("last_read_id") != got["id"] or tutee.wait("messages-read") != mark:
    fail(f"messages-read {mark!r}")
refused = tutor.client.call("react-message", {"message_id": got["id"], "emoji": "ok", "action": "add"}, timeout=5)
if not refused.get("error", "").startswith("Invalid emoji"):
    fail(f"a word is not an emoji: {refused!r}")

tutee.client.disconnect()
if tutor.wait("user-left-chat") != {"userid": 2, "role": "tutee", "member_count": 1}:
    fail("user-left-chat on disconnect")
tutor.client.disconnect()
late = Peer()
late.client.connect(url, transports=["websocket"], wait_timeout=5)
late.client.emit("join-chat", {"eventid": 101, "userid": 1, "role": "tutor"})
history = late.wait("chat-history")
kept = dict(got, reactions={"👏": 1}, my_reactions=["👏"])
receipt = {k: mark[k] for k in ("userid", "role", "last_read_id", "timestamp")}
if history != {"eventid": 101, "messages": [kept], "has_more": False, "read_receipts": [receipt]}:
    fail(f"a later visit's chat-history {history!r}")
late.client.disconnect()
print("ok")
