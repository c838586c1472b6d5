// The official socket.io-client against chatgate's Engine.IO / Socket.IO layers.
// Usage: node engine.mjs URL SCENARIO
import { io, next, ask, equal, fail, run } from "./lib.mjs";

const [url, scenario] = process.argv.slice(2);

const scenarios = {
  // Default transports: long-polling first, then the upgrade to WebSocket.
  async upgrade() {
    const socket = io(url, { reconnection: false });
    const connected = next(socket, "connect");
    // Wrapped in an object: resolving with a bare promise would wait for the upgrade itself.
    const { upgraded } = await new Promise((resolve) =>
      socket.io.once("open", () => {
        if (socket.io.engine.transport.name !== "polling") fail("did not start on polling");
        resolve({ upgraded: next(socket.io.engine, "upgrade") });
      }),
    );
    await connected;
    await upgraded;
    equal(socket.io.engine.transport.name, "websocket", "transport after upgrade");
    socket.emit("echo", "after upgrade", 42);
    equal(await next(socket, "echo-back"), ["after upgrade", 42], "echo over websocket");
    socket.close();
  },

  // Polling only: events and acks work without any WebSocket.
  async polling() {
    const socket = io(url, { transports: ["polling"], reconnection: false });
    await next(socket, "connect");
    equal(await ask(socket, "anything", { a: [1, 2] }, "b"), [{ a: [1, 2] }, "b"], "ack over polling");
    socket.emit("echo", "é ✓ 👋");
    equal(await next(socket, "echo-back"), ["é ✓ 👋"], "unicode echo over polling");
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    socket.emit("echo", bytes);
    const [back] = await next(socket, "echo-back");
    equal([...Buffer.from(back)], [...bytes], "binary echo over polling");
    socket.close();
  },

  // WebSocket only, acks in both directions.
  async acks() {
    const socket = io(url, { transports: ["websocket"], reconnection: false });
    await next(socket, "connect");
    equal(socket.io.engine.transport.name, "websocket", "transport");
    equal(await ask(socket, "sum", 1, 2), [1, 2], "client-to-server ack");
    socket.on("question", (q, callback) => callback({ answer: "yes", to: q }));
    socket.emit("ask-me");
    const [answer] = await next(socket, "answer-received");
    equal(JSON.parse(answer), [{ answer: "yes", to: { q: "ready?" } }], "server-to-client ack");
    socket.close();
  },

  // Binary payloads both ways, nested inside objects, with and without acks.
  async binary() {
    const socket = io(url, { transports: ["websocket"], reconnection: false });
    await next(socket, "connect");
    const a = Buffer.from([1, 2, 3]);
    const b = Buffer.alloc(2048, 7);
    socket.emit("echo", { file: a, meta: { name: "x", data: b } }, "tail");
    const [obj, tail] = await next(socket, "echo-back");
    equal([...Buffer.from(obj.file)], [1, 2, 3], "first attachment");
    equal(Buffer.from(obj.meta.data).length, 2048, "second attachment size");
    equal(obj.meta.name, "x", "plain field beside attachments");
    equal(tail, "tail", "plain argument after binary");
    const [acked] = await ask(socket, "store", Buffer.from("hello"));
    equal(Buffer.from(acked).toString(), "hello", "binary ack");
    socket.close();
  },

  // The server drops the connection; the client reconnects by itself and works again.
  async reconnect() {
    const socket = io(url, { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await next(socket, "connect");
    const firstId = socket.id;
    socket.emit("drop-me");
    const [reason] = await next(socket, "disconnect");
    if (reason !== "transport close" && reason !== "transport error") fail(`disconnect reason ${reason}`);
    await next(socket.io, "reconnect", 10000);
    if (socket.id === firstId) fail("reconnected with the same socket id");
    equal(await ask(socket, "again", 1), [1], "ack after reconnect");
    socket.close();
  },

  // A server-side namespace disconnect reaches the client as "io server disconnect".
  async kicked() {
    const socket = io(url, { transports: ["websocket"] });
    await next(socket, "connect");
    socket.emit("bye");
    const [reason] = await next(socket, "disconnect");
    equal(reason, "io server disconnect", "disconnect reason");
    socket.close();
  },

  // Namespaces: a refused CONNECT gives connect_error with the server's message; a good one works.
  async namespaces() {
    const refused = io(`${url}/admin`, { transports: ["websocket"], auth: { token: "wrong" }, reconnection: false });
    const [err] = await next(refused, "connect_error");
    equal(err.message, "bad token", "refusal message");
    refused.close();
    const unknown = io(`${url}/nowhere`, { transports: ["websocket"], reconnection: false });
    const [err2] = await next(unknown, "connect_error");
    equal(err2.message, "Invalid namespace", "unknown namespace");
    unknown.close();
    const admin = io(`${url}/admin`, { transports: ["websocket"], auth: { token: "secret" }, reconnection: false });
    const [welcome] = await next(admin, "welcome");
    equal(welcome, "admin", "welcome on /admin");
    admin.close();
  },

  // Rooms: a broadcast reaches the other members, not the sender, not other rooms.
  async rooms() {
    const opts = { transports: ["websocket"], reconnection: false, forceNew: true };
    const [a, b, c] = [io(url, opts), io(url, opts), io(url, opts)];
    await Promise.all([next(a, "connect"), next(b, "connect"), next(c, "connect")]);
    equal(await ask(a, "join", "r1"), [1], "first member");
    equal(await ask(b, "join", "r1"), [2], "second member");
    equal(await ask(c, "join", "r2"), [1], "other room");
    let leaked = false;
    a.on("shouted", () => (leaked = true));
    c.on("shouted", () => (leaked = true));
    a.emit("shout", { room: "r1", text: "hi r1" });
    equal(await next(b, "shouted"), ["hi r1"], "member receives");
    // A round trip on each socket after the broadcast proves nothing else was queued for them.
    await ask(a, "sync");
    await ask(c, "sync");
    if (leaked) fail("broadcast reached the sender or another room");
    [a, b, c].forEach((s) => s.close());
  },
};

const main = scenarios[scenario];
if (!main) fail(`unknown scenario ${scenario}`);
run(main);
