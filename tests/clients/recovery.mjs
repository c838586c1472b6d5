// Connection state recovery (docs/RECOVERY.md) with the official socket.io-client: a tutee loses
// its TCP connection, the tutor goes on (messages, an edit, a reaction, a deletion, a read mark),
// and the tutee comes back, to the same node or another one, and gets its socket back
// (`socket.recovered`, the same id) with every missed event once, in order.
// Usage: node recovery.mjs SCENARIO URL_A URL_B
// With the scenario `killed`, the script prints "kill" once the tutee is in the chat on node A and
// waits for a line on stdin saying node A is dead.
import { createInterface } from "node:readline";
import { io, next, ask, equal, fail, run } from "./lib.mjs";

const [scenario, urlA, urlB] = process.argv.slice(2);
const REPLAYED = ["receive-message", "message-edited", "message-deleted", "message-reaction", "messages-read"];

/** A client that records every chat event with all its arguments. */
async function client(url, opts = {}) {
  const socket = io(url, { transports: ["websocket"], forceNew: true, ...opts });
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push([event, ...args]));
  await next(socket, "connect");
  return socket;
}

async function join(socket, eventid, userid, role) {
  const history = next(socket, "chat-history");
  const [joined] = await ask(socket, "join-chat", { eventid, userid, role });
  if (!joined || joined.error) fail(`join: ${JSON.stringify(joined)}`);
  await history;
}

/** A round trip that changes nothing: everything queued earlier for `socket` has arrived. */
async function barrier(socket) {
  const [reply] = await ask(socket, "barrier");
  equal(reply, { error: "Unknown event: barrier" }, "barrier ack");
}

async function send(socket, message) {
  const [ack] = await ask(socket, "send-message", { message });
  if (!ack || !ack.id) fail(`send: ${JSON.stringify(ack)}`);
  return ack.id;
}

/** Cuts the TCP connection under the client, as a network change does (no close frame). */
async function drop(socket) {
  const gone = next(socket, "disconnect");
  socket.io.engine.transport.ws._socket.destroy();
  const [reason] = await gone;
  equal(reason, "transport close", "disconnect reason");
}

/** The tutor's side while the tutee is away: three messages and every kind of change. Returns
 *  the events the tutee must get again, in order, as [event, key fields]. */
async function meanwhile(tutor, earlier) {
  const m2 = await send(tutor, "while you were away 1");
  const m3 = await send(tutor, "while you were away 2");
  const m4 = await send(tutor, "while you were away 3");
  await ask(tutor, "edit-message", { message_id: m2, message: "edited while away" });
  await ask(tutor, "react-message", { message_id: earlier, emoji: "👍", action: "add" });
  await ask(tutor, "delete-message", { message_id: m4 });
  const [read] = await ask(tutor, "mark-read", { message_id: earlier });
  if (!read || read.error) fail(`mark-read: ${JSON.stringify(read)}`);
  return [
    ["receive-message", m2],
    ["receive-message", m3],
    ["receive-message", m4],
    ["message-edited", m2],
    ["message-reaction", earlier],
    ["message-deleted", m4],
    ["messages-read", earlier],
  ];
}

/** What `socket` received of the replayed kinds since its log was cleared, as [event, id],
 *  checking each carries a string offset that increases. */
function replayed(socket) {
  const got = socket.log.filter(([e]) => REPLAYED.includes(e));
  let last = -1n;
  for (const [event, payload, offset, ...more] of got) {
    if (typeof offset !== "string" || more.length) fail(`${event} without one offset: ${JSON.stringify([payload, offset, ...more])}`);
    if (BigInt(offset) <= last) fail(`offsets out of order: ${offset} after ${last}`);
    last = BigInt(offset);
  }
  return got.map(([event, p]) => [event, event === "messages-read" ? p.last_read_id : (p.message_id ?? p.id)]);
}

/** Comes back (to `url`, another node, if given) and checks the socket was recovered. */
async function comeBack(tutee, url) {
  const id = tutee.id ?? tutee.lastId;
  if (url) tutee.io.uri = url; // what a load balancer does: the next node
  tutee.log = [];
  const connected = next(tutee, "connect");
  tutee.connect();
  await connected;
  equal(tutee.recovered, true, "socket.recovered");
  equal(tutee.id, id, "the socket id after recovery");
  await barrier(tutee);
}

/** The part every scenario shares: tutor and tutee in event 101, the tutee drops and comes back. */
async function scenarioOf(tutorUrl, tuteeUrl, backUrl, lose = drop, tuteeOpts = {}) {
  const tutor = await client(tutorUrl);
  const tutee = await client(tuteeUrl, { reconnection: false, ...tuteeOpts });
  await join(tutor, 101, 1, "tutor");
  await join(tutee, 101, 2, "tutee");
  tutee.on("connect", () => {});
  // One message the tutee receives: its client now holds that offset.
  const earlier = await send(tutor, "before the drop");
  await barrier(tutee);
  tutee.lastId = tutee.id;
  await lose(tutee);
  const expected = await meanwhile(tutor, earlier);
  tutor.log = [];
  await comeBack(tutee, backUrl);
  equal(replayed(tutee), expected, "events sent again");
  equal(tutee.log.filter(([e]) => e === "chat-joined" || e === "chat-history").length, 0, "no new join");
  // Nobody was told it joined again.
  await barrier(tutor);
  equal(tutor.log.filter(([e]) => e === "user-joined-chat").length, 0, "no user-joined-chat");
  // The chat goes on, both ways, live.
  tutee.log = [];
  const live = await send(tutor, "welcome back");
  await barrier(tutee);
  equal(replayed(tutee), [["receive-message", live]], "live after recovery");
  const mine = await send(tutee, "glad to be back");
  await barrier(tutor);
  const heard = tutor.log.filter(([e, p]) => e === "receive-message" && p.id === mine);
  equal(heard.length, 1, "the tutor hears the recovered tutee");
  tutor.disconnect();
  tutee.disconnect();
}

const scenarios = {
  same: () => scenarioOf(urlA, urlA, null),
  other: () => scenarioOf(urlA, urlA, urlB),
  // The tutor is on node B; the tutee's node A is killed; the tutee comes back on B.
  killed: () =>
    scenarioOf(urlB, urlA, urlB, async (tutee) => {
      const gone = next(tutee, "disconnect", 30000);
      console.log("kill");
      const lines = createInterface({ input: process.stdin });
      for await (const line of lines) if (line.trim() === "killed") break;
      const [reason] = await gone;
      equal(reason, "transport close", "disconnect reason when the node dies");
    }),

  // Long-polling: the client gives up its session without a word (as a browser whose network
  // went away does); the server still holds it when the client comes back with its pid.
  polling: () =>
    scenarioOf(
      urlA,
      urlA,
      null,
      async (tutee) => {
        const gone = next(tutee, "disconnect");
        tutee.io.engine.close();
        await gone;
      },
      { transports: ["polling"] },
    ),

  // Automatic reconnection while the tutor keeps sending: whether a message reaches the tutee
  // live, in the dead connection's queue or again after the recovery, it gets each once, in order.
  async auto() {
    const tutor = await client(urlA);
    const tutee = await client(urlA, { reconnectionDelay: 50, reconnectionDelayMax: 50 });
    await join(tutor, 101, 1, "tutor");
    await join(tutee, 101, 2, "tutee");
    const ids = [await send(tutor, "first")];
    await barrier(tutee);
    const back = next(tutee, "connect");
    tutee.io.engine.transport.ws._socket.destroy();
    for (let i = 0; i < 20; i++) ids.push(await send(tutor, `burst ${i}`));
    await back;
    equal(tutee.recovered, true, "socket.recovered");
    await barrier(tutee);
    const got = tutee.log.filter(([e]) => e === "receive-message").map(([, p]) => p.id);
    equal(got, ids, "every message once, in order");
    tutor.disconnect();
    tutee.disconnect();
  },

  // What cannot be recovered connects normally: after leaving on purpose (the client's own
  // disconnect) the pid is forgotten, and the client joins again as today.
  async intentional() {
    const tutee = await client(urlA, { reconnection: false });
    await join(tutee, 101, 2, "tutee");
    const id = tutee.id;
    tutee.disconnect();
    const connected = next(tutee, "connect");
    tutee.connect();
    await connected;
    equal(tutee.recovered, false, "socket.recovered after an intentional disconnect");
    if (tutee.id === id) fail("a new socket keeps the old id");
    const [err] = await ask(tutee, "send-message", { message: "not in a chat" });
    equal(err, { error: "Not in any chat room" }, "not in the chat any more");
    tutee.disconnect();
  },
};

const main = scenarios[scenario];
if (!main) fail(`unknown scenario ${scenario}`);
run(main);
