import type { FastifyReply } from 'fastify';
import { NDJSON } from '../../api/types.js';
import { errorBody } from './errors.js';

/**
 * Answers with a stream of JSON lines: work() gets a send function for progress lines and
 * returns the final line. Inputs were checked before this is called; an error from here on is
 * reported in-band as {"Error": …}, since the 200 is already sent.
 */
export async function streamNdjson(reply: FastifyReply, work: (send: (line: unknown) => void) => Promise<unknown>): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-cache' });
  const send = (line: unknown) => res.write(JSON.stringify(line) + '\n');
  try {
    send(await work(send));
  } catch (e) {
    const { status, body } = errorBody(e);
    send({ Error: { ...body, Status: status } });
  }
  res.end();
}

export function wantsNdjson(accept: string | undefined): boolean {
  return (accept ?? '').includes(NDJSON);
}
