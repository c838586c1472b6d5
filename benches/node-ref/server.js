// The seed's chat (chat-api.md) on the official socket.io v4 server with node-postgres: the
// reference implementation chatgate's benchmarks compare against. Same events, payloads, rooms,
// error strings and authorization query (trust mode). Not production code.
//
//   node server.js --port 7001 --database-url postgres://postgres@127.0.0.1/chatgate_bench
import { Server } from "socket.io";
import pg from "pg";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const port = Number(args.port || 7001);
const pool = new pg.Pool({ connectionString: args["database-url"], max: 16 });
const io = new Server(port, { transports: ["websocket", "polling"] });
const members = new Map(); // socket.id -> { eventid, userid, role, name, room }

const isId = (v) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
const timestamp = () => new Date().toISOString().replace("Z", "000");

function leave(socket) {
  const m = members.get(socket.id);
  if (!m) return null;
  members.delete(socket.id);
  socket.leave(m.room);
  const count = io.sockets.adapter.rooms.get(m.room)?.size || 0;
  socket.to(m.room).emit("user-left-chat", { userid: m.userid, role: m.role, member_count: count });
  return m;
}

io.on("connection", (socket) => {
  const fail = (message) => socket.emit("chat-error", { message });
  socket.on("join-chat", async (data) => {
    try {
      const { eventid, userid, role } = data || {};
      if (!isId(eventid) || !isId(userid)) return fail("Missing eventid or userid");
      if (role !== "tutor" && role !== "tutee") return fail("Unauthorized: You are not part of this event");
      const [event, user] = await Promise.all([
        pool.query({ name: "event", text: "SELECT userid_tutor, userid_tutee FROM requested_event WHERE eventid = $1", values: [eventid] }),
        pool.query({ name: "user", text: "SELECT name FROM users WHERE userid = $1", values: [userid] }),
      ]);
      if (event.rowCount === 0) return fail("Event not found");
      const holder = role === "tutor" ? event.rows[0].userid_tutor : event.rows[0].userid_tutee;
      if (holder !== userid || user.rowCount === 0) return fail("Unauthorized: You are not part of this event");
      leave(socket);
      const room = `chat_${eventid}`;
      socket.join(room);
      members.set(socket.id, { eventid, userid, role, name: user.rows[0].name, room });
      const count = io.sockets.adapter.rooms.get(room).size;
      socket.emit("chat-joined", { eventid, member_count: count, role });
      socket.to(room).emit("user-joined-chat", { userid, role, member_count: count });
    } catch (e) {
      fail("Failed to join chat");
    }
  });
  socket.on("send-message", (data) => {
    const m = members.get(socket.id);
    if (!m) return fail("Not in any chat room");
    const { message, eventid } = data || {};
    if (eventid !== undefined && eventid !== m.eventid) return fail("Event ID mismatch");
    if (typeof message !== "string" || !message.trim()) return fail("Empty message");
    io.to(m.room).emit("receive-message", {
      message, userid: m.userid, sender_name: m.name, role: m.role, timestamp: timestamp(), eventid: m.eventid,
    });
  });
  socket.on("leave-chat", () => {
    const m = leave(socket);
    if (!m) return fail("Not in any chat room");
    socket.emit("chat-left", { eventid: m.eventid });
  });
  socket.on("typing", (data) => {
    const m = members.get(socket.id);
    if (!m) return;
    socket.to(m.room).emit("user-typing", { userid: m.userid, role: m.role, is_typing: !!(data && data.is_typing) });
  });
  socket.on("disconnect", () => leave(socket));
});
console.log(`node reference listening on ${port}`);
