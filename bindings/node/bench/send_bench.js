'use strict';
// Send throughput through the Node.js binding, with a JS sink consuming
// everything: single sends of the C example's messages, and batches of 256
// bodies with shared properties. Usage: node bench/send_bench.js [N]
const edgeroute = require('..');

const MANIFEST = {schemaVersion: '1.0', routes: {alerts: "FROM /messages/* WHERE hot = 'yes' INTO $upstream"}};
const n = Number(process.argv[2] || 200000);

async function run(name, send) {
  const router = new edgeroute.Router(MANIFEST);
  let seen = 0;
  router.setSink('iothub', (batch) => { seen += batch.length; });
  const start = process.hrtime.bigint();
  send(router);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const m = router.metrics();
  await router.close();
  // A JS sink slower than the sends: the in-memory endpoint queue (65536
  // messages) fills and the rest is dropped and counted, as without a store.
  console.log(`${name}: ${n} messages sent in ${seconds.toFixed(3)} s = ` +
              `${Math.round(n / seconds)} msg/s (${(seconds * 1e9 / n).toFixed(0)} ns/msg); ` +
              `JS sink saw ${seen}, dropped ${m.dropped} (queue full)`);
}

(async () => {
  await run('send', (router) => {
    const hot = {body: '{"t": 21.5}', properties: {hot: 'yes'}};
    const cold = {body: '{"t": 21.5}'};
    for (let i = 0; i < n; i++) router.send(i % 10 === 0 ? hot : cold);
  });
  await run('sendBodies x256', (router) => {
    const bodies = new Array(256).fill(Buffer.from('{"t": 21.5}'));
    for (let sent = 0; sent < n; sent += 256) {
      router.sendBodies({properties: {hot: 'yes'}}, bodies.slice(0, Math.min(256, n - sent)));
    }
  });
})();
