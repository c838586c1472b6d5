// The chat (docs/PROTOCOL.md), driven by the official socket.io-client as a plain client does.
// Usage: node chat.mjs URL SCENARIO [ARGS...]
// Users and events (the test database and the demo directory agree on these):
//   1 Ada Lovelace, 2 Alan Turing, 3 Grace Hopper, 4 Edsger Dijkstra
//   event 101: tutor 1, tutee 2; 102: tutor 3, tutee 4; 103: tutor 1, tutee 4
import { io, next, ask, equal, fail, run } from "./lib.mjs";

const [url, scenario, ...rest] = process.argv.slice(2);
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;

/** A connected client that records every event it receives. */
async function client(opts = {}) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, ...opts });
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push([event, ...args]));
  await next(socket, "connect");
  return socket;
}

/** Joins and returns the chat-joined payload (the ack carries it too). */
async function join(socket, eventid, userid, role) {
  const [joined] = await ask(socket, "join-chat", { eventid, userid, role });
  if (!joined || joined.error) fail(`join ${eventid}/${userid}/${role}: ${JSON.stringify(joined)}`);
  return joined;
}

/** A round trip that changes nothing: proves everything queued earlier for `socket` has arrived.
 *  (An event the chat does not know is answered with an ack error and nothing else.) */
async function barrier(socket) {
  const [reply] = await ask(socket, "barrier");
  equal(reply, { error: "Unknown event: barrier" }, "barrier ack");
}

/** Events of one name that `socket` has received, payloads only; clears them. */
function take(socket, event) {
  const got = socket.log.filter(([e]) => e === event).map(([, p]) => p);
  socket.log = socket.log.filter(([e]) => e !== event);
  return got;
}

/** Emits and returns [ack, chat-error payload] for a request expected to fail. */
async function refused(socket, event, ...args) {
  const errored = next(socket, "chat-error");
  const [ack] = await ask(socket, event, ...args);
  const [err] = await errored;
  return [ack, err];
}

async function expectError(socket, expected, event, ...args) {
  const [ack, err] = await refused(socket, event, ...args);
  equal(err, { message: expected }, `chat-error for ${event} ${JSON.stringify(args)}`);
  equal(ack, { error: expected }, `ack for ${event} ${JSON.stringify(args)}`);
}

const scenarios = {
  // Every original event (docs/PROTOCOL.md) between a tutor and a tutee, with exact payloads
  // and recipients.
  async flow() {
    const tutor = await client();
    const tutee = await client();
    equal(await join(tutor, 101, 1, "tutor"), { eventid: 101, member_count: 1, role: "tutor" }, "tutor joined");
    const announced = next(tutor, "user-joined-chat");
    equal(await join(tutee, 101, 2, "tutee"), { eventid: 101, member_count: 2, role: "tutee" }, "tutee joined");
    equal(await announced, [{ userid: 2, role: "tutee", member_count: 2 }], "user-joined-chat to the tutor");
    equal(take(tutor, "chat-joined").length, 1, "chat-joined to the joiner only");

    const atTutee = next(tutee, "receive-message");
    const atTutor = next(tutor, "receive-message");
    const [acked] = await ask(tutor, "send-message", { message: "Hello, how can I help you?", eventid: 101 });
    const [m, offset] = await atTutee;
    // With connection state recovery on (the default), the offset is the message's id.
    equal(offset, String(m.id), "receive-message's offset");
    equal(await atTutor, [m, offset], "the sender receives its own message");
    equal(acked, m, "the ack carries the delivered message");
    const { timestamp, id, ...fields } = m;
    equal(fields, { message: "Hello, how can I help you?", userid: 1, sender_name: "Ada Lovelace", role: "tutor", eventid: 101 }, "receive-message");
    if (!Number.isSafeInteger(id) || id <= 0) fail(`id ${id} is not a positive safe integer`);
    if (!TIMESTAMP.test(timestamp)) fail(`timestamp ${timestamp}`);
    const age = Date.now() - Date.parse(timestamp + "Z");
    if (Math.abs(age) > 60000) fail(`timestamp ${timestamp} is not UTC now`);

    // eventid is optional on send-message.
    const second = next(tutor, "receive-message");
    tutee.emit("send-message", { message: "I need help with integrals" });
    equal((await second)[0].sender_name, "Alan Turing", "message without eventid");

    const typing = next(tutor, "user-typing");
    await ask(tutee, "typing", { is_typing: true });
    equal(await typing, [{ userid: 2, role: "tutee", is_typing: true }], "user-typing to the others");
    await barrier(tutee);
    equal(take(tutee, "user-typing"), [], "no user-typing to the typist");

    const left = next(tutor, "user-left-chat");
    const [chatLeft] = await ask(tutee, "leave-chat", { eventid: 101 });
    equal(chatLeft, { eventid: 101 }, "leave ack");
    equal(take(tutee, "chat-left"), [{ eventid: 101 }], "chat-left to the leaver");
    equal(await left, [{ userid: 2, role: "tutee", member_count: 1 }], "user-left-chat to the rest");

    // After leaving, messages no longer reach the tutee.
    await ask(tutor, "send-message", { message: "still there?" });
    await barrier(tutee);
    equal(take(tutee, "receive-message").length, 2, "only the two messages sent while joined");
    tutor.close();
    tutee.close();
  },

  // Each original error string, plus the cases docs/PROTOCOL.md adds, for chat-error and the ack.
  async errors() {
    const s = await client();
    await expectError(s, "Not in any chat room", "send-message", { message: "hi" });
    await expectError(s, "Not in any chat room", "leave-chat", { eventid: 101 });
    await expectError(s, "Not in any chat room", "leave-chat");
    await expectError(s, "Missing eventid or userid", "join-chat", { userid: 1, role: "tutor" });
    await expectError(s, "Missing eventid or userid", "join-chat", { eventid: 101, role: "tutor" });
    await expectError(s, "Missing eventid or userid", "join-chat", { eventid: "101", userid: 1, role: "tutor" });
    await expectError(s, "Missing eventid or userid", "join-chat", { eventid: 101, userid: null, role: "tutor" });
    await expectError(s, "Missing eventid or userid", "join-chat", { eventid: 101.5, userid: 1, role: "tutor" });
    await expectError(s, "Missing eventid or userid", "join-chat", { eventid: 2147483648, userid: 1, role: "tutor" });
    await expectError(s, "Invalid payload: must be an object", "join-chat", "not an object");
    await expectError(s, "Missing eventid or userid", "join-chat");
    await expectError(s, "Event not found", "join-chat", { eventid: 999, userid: 1, role: "tutor" });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 2, role: "tutor" });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 3, role: "tutee" });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 1, role: "admin" });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 1 });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 1, role: 7 });
    // Typing outside a chat is ignored: no chat-error, and an ack that says why.
    const [ignored] = await ask(s, "typing", { is_typing: true });
    equal(ignored, { error: "Not in any chat room" }, "typing outside a chat");

    await join(s, 101, 1, "tutor");
    await expectError(s, "Event ID mismatch", "send-message", { message: "hi", eventid: 102 });
    await expectError(s, "Event ID mismatch", "send-message", { message: "hi", eventid: "101" });
    await expectError(s, "Event ID mismatch", "leave-chat", { eventid: 102 });
    await expectError(s, "Empty message", "send-message", { message: "" });
    await expectError(s, "Empty message", "send-message", { message: "   \n" });
    await expectError(s, "Empty message", "send-message", { eventid: 101 });
    await expectError(s, "Empty message", "send-message");
    await expectError(s, "Invalid message: must be a string", "send-message", { message: { text: "hi" } });
    await expectError(s, "Invalid message: must be a string", "send-message", { message: 42 });
    const max = Number(rest[0] || 5000);
    await expectError(s, `Message too long: at most ${max} characters`, "send-message", { message: "x".repeat(max + 1) });
    await expectError(s, "Invalid typing indicator: is_typing must be true or false", "typing", { is_typing: "yes" });
    await expectError(s, "Invalid typing indicator: is_typing must be true or false", "typing");
    // Exactly the maximum is fine, counted in characters, not bytes.
    const [ok] = await ask(s, "send-message", { message: "é".repeat(max) });
    equal(ok.message.length, max, "a message of exactly the maximum length");
    // After all that, the socket is still in its chat and works.
    const [fine] = await ask(s, "send-message", { message: "still fine", extra: { ignored: true } });
    equal(fine.message, "still fine", "socket usable after errors");
    await barrier(s);
    equal(take(s, "receive-message").length, 2, "no refused message was delivered");
    s.close();
  },

  // Two chats at once: nothing crosses between rooms, and errors in one do not disturb the other.
  async isolation() {
    const [a1, a2, b1, b2] = await Promise.all([client(), client(), client(), client()]);
    await join(a1, 101, 1, "tutor");
    await join(a2, 101, 2, "tutee");
    await join(b1, 102, 3, "tutor");
    await join(b2, 102, 4, "tutee");
    await ask(a1, "send-message", { message: "for 101" });
    await ask(b1, "send-message", { message: "for 102" });
    await refused(b2, "send-message", { message: "" });
    await ask(b2, "typing", { is_typing: true });
    for (const s of [a1, a2, b1, b2]) await barrier(s);
    equal(take(a2, "receive-message").map((m) => m.message), ["for 101"], "101 tutee");
    equal(take(b2, "receive-message").map((m) => m.message), ["for 102"], "102 tutee");
    equal(take(a1, "user-typing"), [], "typing in 102 not seen in 101");
    equal(take(a2, "chat-error"), [], "errors in 102 not seen in 101");
    [a1, a2, b1, b2].forEach((s) => s.close());
  },

  // Member counts through joins, a second tab of the same user, leaves and disconnects.
  async counts() {
    const tutor = await client();
    const tab1 = await client();
    const tab2 = await client();
    equal((await join(tutor, 101, 1, "tutor")).member_count, 1, "tutor alone");
    equal((await join(tab1, 101, 2, "tutee")).member_count, 2, "tutee tab 1");
    await barrier(tutor);
    equal(take(tutor, "user-joined-chat"), [{ userid: 2, role: "tutee", member_count: 2 }], "first tab announced");
    const seen = next(tutor, "user-joined-chat");
    equal((await join(tab2, 101, 2, "tutee")).member_count, 3, "tutee tab 2");
    equal(await seen, [{ userid: 2, role: "tutee", member_count: 3 }], "second tab announced");
    // Both tabs receive messages.
    const both = Promise.all([next(tab1, "receive-message"), next(tab2, "receive-message")]);
    await ask(tutor, "send-message", { message: "to both tabs" });
    await both;
    const gone = next(tutor, "user-left-chat");
    tab1.close();
    equal(await gone, [{ userid: 2, role: "tutee", member_count: 2 }], "disconnect of one tab");
    const gone2 = next(tutor, "user-left-chat");
    await ask(tab2, "leave-chat");
    equal(await gone2, [{ userid: 2, role: "tutee", member_count: 1 }], "leave of the other tab");
    // Rejoin after leaving.
    equal((await join(tab2, 101, 2, "tutee")).member_count, 2, "rejoin");
    tutor.close();
    tab2.close();
  },

  // A socket is in at most one chat: joining another leaves the first; re-joining the same is quiet.
  async switching() {
    const ada = await client();
    const alan = await client();
    const edsger = await client();
    await join(ada, 101, 1, "tutor");
    await join(alan, 101, 2, "tutee");
    await join(edsger, 103, 4, "tutee");
    const left = next(alan, "user-left-chat");
    const arrived = next(edsger, "user-joined-chat");
    equal(await join(ada, 103, 1, "tutor"), { eventid: 103, member_count: 2, role: "tutor" }, "joined 103");
    equal(await left, [{ userid: 1, role: "tutor", member_count: 1 }], "101 told of the switch");
    equal(await arrived, [{ userid: 1, role: "tutor", member_count: 2 }], "103 told of the arrival");
    // Messages now go to 103 only.
    await ask(ada, "send-message", { message: "in 103" });
    await barrier(alan);
    await barrier(edsger);
    equal(take(alan, "receive-message"), [], "101 no longer hears ada");
    equal(take(edsger, "receive-message").map((m) => m.eventid), [103], "103 hears ada");
    // Joining the chat it is already in: chat-joined again, nobody else told.
    take(edsger, "user-joined-chat");
    equal(await join(ada, 103, 1, "tutor"), { eventid: 103, member_count: 2, role: "tutor" }, "re-join");
    await barrier(edsger);
    equal(take(edsger, "user-joined-chat"), [], "re-join is not announced");
    [ada, alan, edsger].forEach((s) => s.close());
  },

  // Unicode and emoji in messages and names survive both directions.
  async unicode() {
    const a = await client();
    const b = await client();
    await join(a, 104, 5, "tutor");
    await join(b, 104, 2, "tutee");
    const text = "Grüße 👋🏽 — 数学 🧮 ∫x²dx \u{1F468}\u200D\u{1F469}\u200D\u{1F467} \"quoted\" \\ back";
    const got = next(b, "receive-message");
    await ask(a, "send-message", { message: text });
    const [m] = await got;
    equal(m.message, text, "message text");
    equal(m.sender_name, "Zoë Ōkubo 🎓", "sender name");
    a.close();
    b.close();
  },

  // JWT mode: ARGS = a token for user 1, an expired one, one with a bad signature.
  async jwt() {
    const [good, expired, forged] = rest;
    const s = await client({ auth: { token: good } });
    await join(s, 101, 1, "tutor");
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 102, userid: 3, role: "tutor" });
    await expectError(s, "Unauthorized: You are not part of this event", "join-chat", { eventid: 101, userid: 2, role: "tutee" });
    s.close();
    for (const [auth, message] of [
      [undefined, "Authentication required: pass { auth: { token } }"],
      [{ token: expired }, "Authentication failed: token expired"],
      [{ token: forged }, "Authentication failed: invalid token"],
      [{ token: 42 }, "Authentication required: pass { auth: { token } }"],
    ]) {
      const refusedSocket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth });
      const [err] = await next(refusedSocket, "connect_error");
      equal(err.message, message, `connect refused for ${JSON.stringify(auth)}`);
      refusedSocket.close();
    }
  },

  // Rate limits (the server runs with --message-rate 1 --message-burst 3 --typing-rate 1
  // --typing-burst 2): over the limit, "Rate limit exceeded" and nothing is delivered.
  async ratelimit() {
    const a = await client();
    const b = await client();
    await join(a, 101, 1, "tutor");
    await join(b, 101, 2, "tutee");
    for (let i = 0; i < 3; i++) {
      const [ok] = await ask(a, "send-message", { message: `burst ${i}` });
      equal(ok.message, `burst ${i}`, "within the burst");
    }
    await expectError(a, "Rate limit exceeded", "send-message", { message: "one too many" });
    await ask(a, "typing", { is_typing: true });
    await ask(a, "typing", { is_typing: false });
    await expectError(a, "Rate limit exceeded", "typing", { is_typing: true });
    // The other member's own budget is untouched.
    const [fromB] = await ask(b, "send-message", { message: "b is fine" });
    equal(fromB.message, "b is fine", "another socket is not limited by a's flood");
    await barrier(b);
    equal(take(b, "receive-message").map((m) => m.message), ["burst 0", "burst 1", "burst 2", "b is fine"], "delivered");
    equal(take(b, "user-typing").length, 2, "typing within the limit only");
    a.close();
    b.close();
  },

  // Polling transport only (no WebSocket at all): the whole chat works.
  async polling() {
    const a = await client({ transports: ["polling"] });
    const b = await client({ transports: ["polling"] });
    await join(a, 101, 1, "tutor");
    await join(b, 101, 2, "tutee");
    const got = next(b, "receive-message");
    await ask(a, "send-message", { message: "over long-polling" });
    equal((await got)[0].message, "over long-polling", "message over polling");
    a.close();
    b.close();
  },

  // History: a reconnecting tutee gets the chat so far after chat-joined, and pages back with
  // load-history (the server's page size is 2 in this scenario's test).
  async history() {
    const tutor = await client();
    // Listening before the join: chat-history may arrive in the same read as the join's ack.
    const first = next(tutor, "chat-history");
    await join(tutor, 101, 1, "tutor");
    equal(await first, [{ eventid: 101, messages: [], has_more: false, read_receipts: [] }], "a new chat's history");
    const sent = [];
    for (const text of ["one", "two", "three"]) {
      const [m] = await ask(tutor, "send-message", { message: text });
      sent.push(m);
    }
    if (!(sent[0].id < sent[1].id && sent[1].id < sent[2].id)) fail(`ids ${sent.map((m) => m.id)}`);
    const tutee = await client();
    const history = next(tutee, "chat-history");
    await join(tutee, 101, 2, "tutee");
    equal(await history, [{ eventid: 101, messages: sent.slice(1), has_more: true, read_receipts: [] }], "the newest page after chat-joined");
    const [older] = await ask(tutee, "load-history", { eventid: 101, before_id: sent[1].id, limit: 5 });
    equal(older, { eventid: 101, messages: sent.slice(0, 1), has_more: false, read_receipts: [] }, "the page before");
    tutor.close();
    tutee.close();
  },

  // Read receipts, reactions, edits and deletions with the official client: each event with its
  // ack and its broadcast, and one refusal of each kind a client is most likely to hit.
  async changes() {
    const tutor = await client();
    const tutee = await client();
    await join(tutor, 101, 1, "tutor");
    await join(tutee, 101, 2, "tutee");
    const [m] = await ask(tutor, "send-message", { message: "2 + 2 = 5" });
    await barrier(tutee);

    const read = next(tutor, "messages-read");
    const [mark] = await ask(tutee, "mark-read", { eventid: 101, userid: 2, message_id: m.id });
    equal((await read)[0], mark, "messages-read is what the ack said");
    equal([mark.userid, mark.role, mark.last_read_id], [2, "tutee", m.id], "the mark");
    if (!TIMESTAMP.test(mark.timestamp)) fail(`timestamp ${mark.timestamp}`);

    const reacted = next(tutor, "message-reaction");
    const [reaction] = await ask(tutee, "react-message", { eventid: 101, userid: 2, message_id: m.id, emoji: "🤔", action: "add" });
    equal((await reacted)[0], reaction, "message-reaction is what the ack said");
    equal(reaction.counts, { "🤔": 1 }, "counts");

    const edited = next(tutee, "message-edited");
    const [edit] = await ask(tutor, "edit-message", { eventid: 101, userid: 1, message_id: m.id, message: "2 + 2 = 4" });
    equal((await edited)[0], edit, "message-edited is what the ack said");
    equal([edit.message_id, edit.message], [m.id, "2 + 2 = 4"], "the edit");
    if (!TIMESTAMP.test(edit.edited_at)) fail(`edited_at ${edit.edited_at}`);

    const refusals = [
      [tutee, "edit-message", { message_id: m.id, message: "hijack" }, "Not your message: only its author can edit or delete it"],
      [tutee, "react-message", { message_id: m.id, emoji: "🤔🤔", action: "add" }, "Invalid emoji: emoji must be exactly one emoji (skin tones and ZWJ sequences count as one)"],
      [tutee, "mark-read", { message_id: m.id + 1 }, "Message not found in this chat"],
      [tutee, "delete-message", { message_id: "x" }, "Invalid message_id: must be a positive integer"],
    ];
    for (const [socket, event, body, error] of refusals) {
      const chatError = next(socket, "chat-error");
      const [answer] = await ask(socket, event, body);
      equal(answer, { error }, `${event} refused by ack`);
      equal((await chatError)[0], { message: error }, `${event} refused by chat-error`);
    }

    const deleted = next(tutee, "message-deleted");
    const [gone] = await ask(tutor, "delete-message", { eventid: 101, userid: 1, message_id: m.id });
    equal((await deleted)[0], gone, "message-deleted is what the ack said");

    const late = await client();
    const history = next(late, "chat-history");
    await join(late, 101, 2, "tutee");
    const [page] = await history;
    const tombstone = page.messages[0];
    equal([tombstone.id, tombstone.message, tombstone.deleted, tombstone.deleted_at], [m.id, "", true, gone.deleted_at], "the tombstone");
    equal(page.read_receipts, [{ userid: 2, role: "tutee", last_read_id: m.id, timestamp: mark.timestamp }], "receipts");
    for (const s of [tutor, tutee, late]) s.close();
  },

  // One event sent with payloads that are not objects: each is refused with a chat-error and an
  // ack error, nobody else hears anything, and the sender's chat keeps working (still joined,
  // messages still flow). ARGS: the event name.
  async "not-an-object"() {
    const [event] = rest;
    const tutor = await client();
    const tutee = await client();
    await join(tutor, 101, 1, "tutor");
    await join(tutee, 101, 2, "tutee");
    const [first] = await ask(tutor, "send-message", { eventid: 101, message: "before" });
    await barrier(tutor);
    await barrier(tutee);
    tutor.log = [];
    tutee.log = [];
    for (const bad of ["text", 42, null, [101], true, ""]) {
      await expectError(tutor, "Invalid payload: must be an object", event, bad);
    }
    take(tutor, "chat-error");
    await barrier(tutee);
    equal(tutee.log, [], `what the tutee heard of ${event} with bad payloads`);
    equal(tutor.log, [], `what the tutor got besides the refusals`);
    // Still in the chat, with history and the message before intact.
    const heard = next(tutee, "receive-message");
    const [ack] = await ask(tutor, "send-message", { eventid: 101, message: `after ${event}` });
    if (!ack || ack.error) fail(`send after ${event}: ${JSON.stringify(ack)}`);
    const [got] = await heard;
    equal(got.message, `after ${event}`, "the message after the refusals");
    const [page] = await ask(tutor, "load-history", { eventid: 101 });
    equal(page.messages.map((m) => m.id), [first.id, ack.id], "history after the refusals");
    tutor.close();
    tutee.close();
  },

  // A new user's first chat on a database chatgate has just prepared: joins, history and a
  // message, with no chat-error anywhere. ARGS: the message text.
  async "first-chat"() {
    const [text] = rest;
    const tutor = await client();
    const tutee = await client();
    const tutorHistory = next(tutor, "chat-history");
    await join(tutor, 101, 1, "tutor");
    const [page] = await tutorHistory;
    equal([page.eventid, page.messages, page.has_more], [101, [], false], "an empty first history");
    await join(tutee, 101, 2, "tutee");
    const heard = next(tutee, "receive-message");
    const [ack] = await ask(tutor, "send-message", { eventid: 101, message: text });
    if (!ack || ack.error || !Number.isInteger(ack.id)) fail(`send ack: ${JSON.stringify(ack)}`);
    const [got] = await heard;
    equal([got.message, got.id], [text, ack.id], "the tutee's copy");
    await barrier(tutor);
    await barrier(tutee);
    for (const s of [tutor, tutee]) {
      const errors = s.log.filter(([e]) => e === "chat-error");
      if (errors.length > 0) fail(`chat-error: ${JSON.stringify(errors)}`);
      s.close();
    }
    console.log(`stored id ${ack.id}`);
  },

  // File sharing (docs/FILES.md) as a web client does it: upload with fetch and FormData, send
  // the file id with the message, the other member downloads from the url it got.
  async attachments() {
    const tutor = await client();
    const tutee = await client();
    await join(tutor, 101, 1, "tutor");
    await join(tutee, 101, 2, "tutee");
    const bytes = new TextEncoder().encode("Exercise 1: integrate x² from 0 to 1.\n");
    const form = new FormData();
    form.append("file", new Blob([bytes], { type: "text/plain" }), "exercise 1.txt");
    const up = await fetch(`${url}/files?eventid=101&userid=1`, { method: "POST", body: form });
    if (up.status !== 201) fail(`upload: ${up.status} ${await up.text()}`);
    const file = await up.json();
    equal(file.name, "exercise 1.txt", "name");
    equal(file.size, bytes.length, "size");
    equal(file.content_type, "text/plain", "content_type");

    const atTutee = next(tutee, "receive-message");
    const [acked] = await ask(tutor, "send-message", { message: "Homework", attachments: [file.file_id] });
    const [m] = await atTutee;
    equal(acked, m, "the ack carries the delivered message");
    equal(m.attachments, [{ file_id: file.file_id, name: "exercise 1.txt", size: bytes.length,
      content_type: "text/plain", url: file.url }], "attachments");

    const down = await fetch(`${url}${m.attachments[0].url}?userid=2`);
    if (down.status !== 200) fail(`download: ${down.status}`);
    equal(new Uint8Array(await down.arrayBuffer()).join(), bytes.join(), "downloaded bytes");
    equal(down.headers.get("x-content-type-options"), "nosniff", "nosniff");
    if (!down.headers.get("content-disposition").startsWith("attachment;")) fail("text is not inline");

    const [again] = await ask(tutor, "send-message", { message: "again", attachments: [file.file_id] });
    equal(again, { error: `Attachment refused: file ${file.file_id} is already attached to a message` }, "ack error");
    const [history] = await ask(tutee, "load-history", {});
    equal(history.messages.at(-1), m, "history has it as delivered");
    for (const s of [tutor, tutee]) s.close();
  },
};

const main = scenarios[scenario];
if (!main) fail(`unknown scenario ${scenario}`);
run(main);
