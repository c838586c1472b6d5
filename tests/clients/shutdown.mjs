// A graceful shutdown as the official socket.io-client sees it (docs/PROTOCOL.md, "Shutdown").
// Usage: node shutdown.mjs URL PID SIGNAL TRANSPORTS EXPECTED_REASON
//   TRANSPORTS: "polling" (long-polling only) or "default" (polling, then the upgrade to WebSocket)
//   EXPECTED_REASON: what every client's `disconnect` must report ("io server disconnect", or
//   "transport close" with --shutdown-notice reconnect)
//
// Three pairs of clients join event 101 (demo directory). Each tutor sends a burst of messages and
// waits for the acks, which come once the gateway has queued every delivery; then this script sends
// the signal to the gateway itself, at once, while most deliveries are still on their way. Every
// client must still receive every message, then the expected disconnect reason, never a transport
// error.
import { io, next, ask, fail, run } from "./lib.mjs";

const [url, pid, signal, transports, expectedReason] = process.argv.slice(2);
const PAIRS = 3;
const BURST = 20;

async function client(userid, role) {
  const opts = { reconnection: false, forceNew: true };
  if (transports === "polling") opts.transports = ["polling"];
  const socket = io(url, opts);
  socket.got = [];
  socket.on("receive-message", (m) => socket.got.push(m.message));
  socket.ended = new Promise((resolve) => socket.on("disconnect", (reason) => resolve(reason)));
  await next(socket, "connect");
  if (transports !== "polling" && socket.io.engine.transport.name !== "websocket") {
    await next(socket.io.engine, "upgrade");
  }
  const [joined] = await ask(socket, "join-chat", { eventid: 101, userid, role });
  if (!joined || joined.error) fail(`join: ${JSON.stringify(joined)}`);
  return socket;
}

run(async () => {
  const sockets = [];
  for (let i = 0; i < PAIRS; i++) {
    sockets.push(await client(1, "tutor"), await client(2, "tutee"));
  }
  const tutors = sockets.filter((_, i) => i % 2 === 0);
  const sent = [];
  await Promise.all(
    tutors.map(async (tutor, t) => {
      for (let i = 0; i < BURST; i++) {
        const text = `pair ${t} message ${i}`;
        sent.push(text);
        const [ack] = await ask(tutor, "send-message", { eventid: 101, message: text });
        if (!ack || ack.error) fail(`send: ${JSON.stringify(ack)}`);
      }
    }),
  );
  process.kill(Number(pid), signal);
  const reasons = await Promise.all(
    sockets.map((s) =>
      Promise.race([
        s.ended,
        new Promise((_, reject) => setTimeout(() => reject(new Error("no disconnect within 15 s")), 15000)),
      ]),
    ),
  );
  sockets.forEach((s, i) => {
    if (reasons[i] !== expectedReason) {
      fail(`client ${i} (${transports}) disconnected with '${reasons[i]}', expected '${expectedReason}'`);
    }
    const missing = sent.filter((m) => !s.got.includes(m));
    if (missing.length > 0 || s.got.length !== sent.length) {
      fail(`client ${i} got ${s.got.length} of ${sent.length} messages before the disconnect; missing ${missing.slice(0, 3)}`);
    }
  });
  console.log(`ok: ${sockets.length} clients, ${sent.length} messages each, '${expectedReason}'`);
});
