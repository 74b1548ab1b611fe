// One write per event-loop turn for a Redis connection's commands.
import type { Redis } from 'ioredis';

/**
 * Gathers the commands a client sends while one turn of the event loop runs into one write. The HEADs of many
 * connections arrive together and each sends its lookup (a fill sends several commands); written one by one, each
 * write also pays for waking redis-server, a good part of what a whole HEAD costs. So the socket is corked at a
 * turn's first command and uncorked once the turn's I/O callbacks are done (setImmediate): Redis reads them at
 * once and answers in one write. Only once the client is ready, so the
 * connection's own handshake is untouched. A Cluster client needs none of this: it pipelines by itself.
 */
export function coalesceWrites(client: Redis): void {
  let corked = false;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    if (!corked && stream === undefined && client.status === 'ready') {
      const socket = client.stream;
      socket.cork();
      corked = true;
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send(command, stream);
  };
}
