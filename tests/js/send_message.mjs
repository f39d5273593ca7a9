// Sends one chat message with the official socket.io-client and prints the ack as JSON.
//
//   node send_message.mjs URL TOKEN CONVERSATION_ID BODY CLIENT_ID
//
// Exits 0 with {"ack": ...} on stdout once the server answered; 1 (reason on stderr) if
// the connection was refused or no ack came within the timeout.

import { io } from "socket.io-client";

const [url, token, conversationId, body, clientId] = process.argv.slice(2);
if (!url || !token || !conversationId || !body || !clientId) {
  console.error("usage: node send_message.mjs URL TOKEN CONVERSATION_ID BODY CLIENT_ID");
  process.exit(2);
}

const socket = io(url, { transports: ["websocket"], reconnection: false, auth: { token } });
socket.once("connect_error", (err) => {
  console.error(`connect_error: ${err.message} ${JSON.stringify(err.data ?? null)}`);
  process.exit(1);
});
socket.once("connect", async () => {
  try {
    const ack = await socket.timeout(15000).emitWithAck("message.send", {
      conversation_id: conversationId, body, client_id: clientId,
    });
    console.log(JSON.stringify({ ack }));
    socket.close();
    process.exit(0);
  } catch (err) {
    console.error(`no ack: ${err.message}`);
    process.exit(1);
  }
});
