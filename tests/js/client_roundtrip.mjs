// Drives a HotSpot server with the official socket.io-client, the way a browser app would.
//
//   node client_roundtrip.mjs URL TOKEN      (or HOTSPOT_URL / HOTSPOT_TOKEN in the environment)
//
// Prints one JSON object on stdout and exits 0 when every step got an answer:
//   {"client_version", "ack": <account.get ack>, "unknown_ack": <ack of an unknown event>,
//    "bad_token_error": {"message", "data"}}
// The Python test (tests/server/test_js_client.py) judges the answers; this script only
// fails (exit 1, reason on stderr) when a step gets no answer at all.

import { createRequire } from "node:module";
import { io } from "socket.io-client";

const require = createRequire(import.meta.url);
const clientVersion = require("socket.io-client/package.json").version;

const url = process.argv[2] ?? process.env.HOTSPOT_URL;
const token = process.argv[3] ?? process.env.HOTSPOT_TOKEN;
const STEP_TIMEOUT_MS = 5000;

if (!url || !token) {
  console.error("usage: node client_roundtrip.mjs URL TOKEN (or HOTSPOT_URL, HOTSPOT_TOKEN)");
  process.exit(2);
}

const options = { transports: ["websocket"], reconnection: false, timeout: STEP_TIMEOUT_MS };

/** Connect and resolve with the socket, or reject with the connect_error. */
function connect(auth) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { ...options, auth, forceNew: true });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function main() {
  const socket = await connect({ token });
  const ack = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("account.get", {});
  const unknownAck = await socket.timeout(STEP_TIMEOUT_MS).emitWithAck("no.such.command", {});
  socket.close();

  let badTokenError = null;
  try {
    const intruder = await connect({ token: "not-a-jwt" });
    intruder.close();
  } catch (err) {
    badTokenError = { message: err.message, data: err.data ?? null };
  }

  process.stdout.write(
    JSON.stringify({
      client_version: clientVersion,
      ack,
      unknown_ack: unknownAck,
      bad_token_error: badTokenError,
    }) + "\n",
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`client_roundtrip failed: ${err?.stack ?? err}`);
    if (err?.data !== undefined) console.error(`error data: ${JSON.stringify(err.data)}`);
    process.exit(1);
  },
);
