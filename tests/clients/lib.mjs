// Helpers shared by the client scripts: awaiting events with a deadline, and failing loudly.
import { io } from "socket.io-client";

export { io };

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

/** Resolves with the first `event` on `emitter` (its arguments as an array), or fails after `ms`. */
export function next(emitter, event, ms = 5000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`no '${event}' within ${ms} ms`), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Emits with an acknowledgement and resolves with all of the ack's arguments, or fails. */
export function ask(socket, event, ...args) {
  return new Promise((resolve) => {
    socket.timeout(5000).emit(event, ...args, (err, ...reply) => {
      if (err) fail(`no ack for '${event}': ${err}`);
      resolve(reply);
    });
  });
}

export function equal(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

/** Runs `main` and exits 0 when it returns, 1 when it throws. */
export function run(main) {
  main().then(
    () => process.exit(0),
    (e) => fail(e && e.stack ? e.stack : String(e)),
  );
}
