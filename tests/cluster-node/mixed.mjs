// A Node.js socket.io 4.8 server with @socket.io/redis-adapter 8 in one cluster with chatgate.
// Usage: node mixed.mjs CHATGATE_URL REDIS_URL PREFIX
// Checks, each failing the script with a message: a chat message sent through chatgate reaches a
// client of the Node server; a broadcast from the Node server and one from @socket.io/redis-emitter
// reach a client of chatgate; fetchSockets(), allRooms() and serverSideEmit with ack from the Node
// side get chatgate's answers (no timeout); a broadcast with ack collects the acks of both servers'
// clients; socketsJoin, socketsLeave and disconnectSockets act on chatgate's sockets.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import { io as connect } from "socket.io-client";

const [chatgateUrl, redisUrl, prefix] = process.argv.slice(2);
const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};
setTimeout(() => fail("did not finish within 30 s"), 30000).unref();
const equal = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
};
const next = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);
const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub, { key: prefix, requestsTimeout: 3000 }) });
io.on("connection", (socket) => {
  socket.on("enter", (room, ack) => {
    socket.join(room);
    ack("ok");
  });
});
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const nodeUrl = `http://127.0.0.1:${http.address().port}`;

const chatgateClient = connect(chatgateUrl, { transports: ["websocket"], forceNew: true, reconnection: false });
await next(chatgateClient, "connect");
const joined = await chatgateClient.emitWithAck("join-chat", { eventid: 101, userid: 1, role: "tutor" });
equal(joined, { eventid: 101, member_count: 1, role: "tutor" }, "join on chatgate");
const nodeClient = connect(nodeUrl, { transports: ["websocket"], forceNew: true, reconnection: false });
await next(nodeClient, "connect");
equal(await nodeClient.emitWithAck("enter", "chat_101"), "ok", "join on the Node server");

// chatgate -> Node: the chat's own broadcast, in the redis-adapter format.
const atNode = next(nodeClient, "receive-message");
chatgateClient.emit("send-message", { message: "from chatgate" });
const [fromChatgate] = await atNode;
equal([fromChatgate.message, fromChatgate.sender_name, fromChatgate.eventid], ["from chatgate", "Ada Lovelace", 101], "chatgate's message at the Node client");

// Node -> chatgate.
const atChatgate = next(chatgateClient, "receive-message");
io.to("chat_101").emit("receive-message", { message: "from node", userid: 2, sender_name: "Alan Turing", role: "tutee", timestamp: "2026-01-01T00:00:00.000000", eventid: 101 });
const [fromNode] = await atChatgate;
equal(fromNode.message, "from node", "the Node server's broadcast at the chatgate client");

// fetchSockets: both servers' sockets, chatgate's described with its rooms.
const sockets = await io.in("chat_101").fetchSockets();
const ids = sockets.map((s) => s.id).sort();
equal(ids, [chatgateClient.id, nodeClient.id].sort(), "fetchSockets over the cluster");
const remote = sockets.find((s) => s.id === chatgateClient.id);
if (!remote.rooms.has("chat_101") || !remote.rooms.has(chatgateClient.id)) fail(`rooms of chatgate's socket: ${[...remote.rooms]}`);

// serverSideEmit with ack: chatgate answers (null), so the Node side does not time out.
const answers = await io.serverSideEmitWithAck("hello", 1);
equal(answers, [null], "serverSideEmit answers");

// Broadcast with ack: the acks of both servers' clients come back.
chatgateClient.on("question", (q, ack) => ack(`chatgate client: ${q}`));
nodeClient.on("question", (q, ack) => ack(`node client: ${q}`));
const acks = await io.timeout(3000).to("chat_101").emitWithAck("question", "hi");
equal(acks.sort(), ["chatgate client: hi", "node client: hi"], "broadcast with ack");

// @socket.io/redis-emitter publishes into the chat.
const fromEmitter = next(chatgateClient, "receive-message");
new Emitter(pub, { key: prefix }).to("chat_101").emit("receive-message", { message: "from the emitter", eventid: 101 });
equal((await fromEmitter)[0].message, "from the emitter", "the emitter's event at the chatgate client");

// All rooms, remote join and leave, remote disconnect.
const rooms = await io.of("/").adapter.allRooms();
if (!rooms.has("chat_101") || !rooms.has(chatgateClient.id)) fail(`allRooms: ${[...rooms]}`);
io.in(chatgateClient.id).socketsJoin("extra");
const inExtra = async () => (await io.in("extra").fetchSockets()).map((s) => s.id);
for (let i = 0; !(await inExtra()).includes(chatgateClient.id); i++) {
  if (i > 100) fail("socketsJoin did not reach chatgate");
  await new Promise((r) => setTimeout(r, 20));
}
io.in(chatgateClient.id).socketsLeave("extra");
for (let i = 0; (await inExtra()).includes(chatgateClient.id); i++) {
  if (i > 100) fail("socketsLeave did not reach chatgate");
  await new Promise((r) => setTimeout(r, 20));
}
const disconnected = next(chatgateClient, "disconnect");
io.in(chatgateClient.id).disconnectSockets();
equal((await disconnected)[0], "io server disconnect", "disconnectSockets of a chatgate socket");

chatgateClient.close();
nodeClient.close();
io.close();
await Promise.all([pub.quit(), sub.quit()]).catch(() => {});
console.log("ok");
process.exit(0);
