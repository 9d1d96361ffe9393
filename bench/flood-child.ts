/**
 * The --flood clients in a process of their own (bench/flood.ts
 * startFloodProcess): `node flood-child.js <port> <date>`. Prints "started"
 * once signed in and flooding; when its stdin ends, stops and prints the
 * counts as one JSON line.
 */
import { startFlood } from './flood.js';

const [port, date] = process.argv.slice(2);
const flood = await startFlood(Number(port), date!);
process.stdout.write('started\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void flood.stop().then((counts) => {
    process.stdout.write(`${JSON.stringify(counts)}\n`);
    process.exit(0);
  });
});
