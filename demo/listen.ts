import { createServer, type RequestListener, type Server } from 'node:http';

/** Every server of the demo listens on this machine only (public demo secrets). */
export const DEMO_HOST = 'localhost';

/** Listens on `localhost:port`; a port in use is reported with the part that wanted it. */
export async function listen(handler: RequestListener, port: number, name: string): Promise<Server> {
  const server = createServer({ requestTimeout: 30_000, headersTimeout: 15_000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`port ${port} (${name}) is in use: stop what uses it or choose another --base-port`)
          : err,
      ),
    );
    server.listen(port, DEMO_HOST, resolve);
  });
  return server;
}

/** Closes a demo server at once, its browsers' keep-alive connections included. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}
