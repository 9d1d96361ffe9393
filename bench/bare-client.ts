/**
 * One bare HTTP client of P1's floor (`--floor`, floor.ts): keeps its share
 * of the cap in flight against the simulator, sending the next request the
 * moment an answer has been read, and does nothing else — no database, no
 * job, no validation. The simulator admits each request, waits L and refuses
 * its layout; to the cap and the latency it is a money call like any other.
 * Parent → child: { n } (calls to make); child → parent: 'ready', then { ms }.
 */
import http from 'node:http';

const [target, inFlightArg] = process.argv.slice(2);
const url = new URL(target!);
const inFlight = Number(inFlightArg);
const agent = new http.Agent({ keepAlive: true });
const body = JSON.stringify({ Header: { ApiNm: 'DrawingTransfer' } });

const call = () =>
  new Promise<void>((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });

process.on('message', (m: { n: number }) => {
  let left = m.n;
  const t0 = performance.now();
  const lane = async () => {
    while (left > 0) {
      left--;
      await call();
    }
  };
  Promise.all(Array.from({ length: inFlight }, lane)).then(
    () => process.send!({ ms: performance.now() - t0 }),
    (e: Error) => {
      process.send!({ error: e.message });
    },
  );
});
process.send!('ready');
