'use strict';
// node --test: the binding against libedgeroute.so.0.
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {test} = require('node:test');
const edgeroute = require('..');

const MANIFEST = {
  schemaVersion: '1.1',
  routes: {
    alerts: "FROM /messages/* WHERE hot = 'yes' INTO $upstream",
    toFilter: {route: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/filter/inputs/in")', priority: 0},
  },
  storeAndForwardConfiguration: {timeToLiveSecs: 7200},
};
const ALL = {schemaVersion: '1.0', routes: {all: 'FROM /messages/* INTO $upstream'}};

test('version matches VERSION', () => {
  assert.strictEqual(edgeroute.version(), edgeroute.RELEASE);
  const file = path.join(__dirname, '..', '..', '..', 'VERSION');
  if (fs.existsSync(file)) assert.strictEqual(fs.readFileSync(file, 'utf8').trim(), edgeroute.version());
  assert.strictEqual(require('../package.json').version, edgeroute.version());
});

test('route errors carry line and column', () => {
  assert.deepStrictEqual(edgeroute.checkRoute("FROM /messages WHERE a = 'x' INTO $upstream"), []);
  assert.throws(() => edgeroute.checkRoute("FROM /messages WHERE a = 'x INTO $upstream"), (e) => {
    assert.ok(e instanceof edgeroute.EdgerouteError);
    assert.strictEqual(e.code, 'INVALID_ARGUMENT');
    assert.strictEqual(e.line, 1);
    assert.ok(e.column > 0);
    return true;
  });
  const bad = '{"schemaVersion": "1.0", "routes": {\n  "r1": "FROM /messages INTO $upstream",\n' +
              '  "r2": "FROM /messages WHERE ( INTO $upstream"\n}}';
  assert.throws(() => edgeroute.checkManifest(bad), (e) => e.line === 3 && e.diagnostics[0].routeName === 'r2');
  assert.throws(() => new edgeroute.Router(bad), (e) => e.code === 'INVALID_ARGUMENT' && e.line === 3);
});

test('conditions are three-valued', () => {
  const c = new edgeroute.Condition("level = 'critical' AND $connectionModuleId = 'sensor'");
  try {
    const sys = {connectionModuleId: 'sensor'};
    assert.strictEqual(c.evaluate({properties: {level: 'critical'}, systemProperties: sys}), true);
    assert.strictEqual(c.evaluate({properties: {level: 'info'}, systemProperties: sys}), false);
    assert.strictEqual(c.evaluate({systemProperties: sys}), undefined);
  } finally {
    c.close();
  }
  assert.throws(() => new edgeroute.Condition('level ='), (e) => e.code === 'INVALID_ARGUMENT');
});

test('routes messages to JS sinks', async () => {
  const router = new edgeroute.Router(MANIFEST, {deviceId: 'gw'});
  const upstream = [];
  const filter = [];
  router.setSink('iothub', (batch) => { upstream.push(...batch.messages()); });
  router.setSink('gw/filter/in', (batch) => {
    assert.strictEqual(batch.endpoint, 'gw/filter/in');
    assert.strictEqual(batch.priority, 0);
    filter.push(...batch.messages());
  });
  for (let i = 0; i < 100; i++) {
    router.send({
      body: JSON.stringify({i}),
      properties: i % 10 === 0 ? {hot: 'yes', note: null} : {},
      systemProperties: {connectionModuleId: 'sensor'},
    });
  }
  await router.waitIdle();
  assert.strictEqual(upstream.length, 10);
  assert.strictEqual(filter.length, 100);
  const d = upstream[0];
  assert.strictEqual(d.body.toString(), '{"i":0}');
  assert.deepStrictEqual(d.properties, {hot: 'yes', note: null});
  assert.strictEqual(d.systemProperties.connectionModuleId, 'sensor');
  assert.strictEqual(d.source, '/messages/modules/sensor');
  assert.ok(d.encoded.length > 0);
  const m = router.metrics();
  assert.strictEqual(m.received, 100);
  assert.strictEqual(m.delivered, 110);
  const em = router.endpointMetrics('gw/filter/in');
  assert.strictEqual(em.delivered, 100);
  assert.strictEqual(em.hasSink, true);
  assert.throws(() => router.endpointMetrics('nope'), (e) => e.code === 'NOT_FOUND');
  assert.match(router.prometheusText(), /gw\/filter\/in/);
  await router.close();
  assert.throws(() => router.send({body: 'x'}), (e) => e.code === 'FAILED_PRECONDITION');
});

test('promise sinks: rejection retries, resolution delivers, deferred acks', async () => {
  const router = new edgeroute.Router(ALL, {retryInitialMs: 1, retryMaxMs: 5});
  let attempts = 0;
  const delivered = new Promise((resolve) => {
    router.setSink('iothub', (batch) => {
      attempts += 1;
      if (attempts === 1) return Promise.reject(new Error('upstream offline'));
      if (attempts === 2) throw new Error('a bug in the sink');
      if (attempts === 3) {
        batch.defer();
        setTimeout(() => batch.ackAll(edgeroute.Outcome.RETRY), 1);
        return undefined;
      }
      return new Promise((ok) => setTimeout(() => { resolve(batch.messages()); ok(); }, 1));
    });
  });
  router.send({body: 'x'});
  const messages = await delivered;
  assert.strictEqual(messages[0].body.toString(), 'x');
  await router.waitIdle();
  const m = router.metrics();
  assert.strictEqual(attempts, 4);
  assert.strictEqual(m.retried, 3);
  assert.strictEqual(m.delivered, 1);
  await router.close();
});

test('store and forward across routers; sendBodies', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeroute-node-'));
  try {
    let router = new edgeroute.Router(ALL, {storeDirectory: dir});
    assert.strictEqual(router.sendBodies({properties: {k: 'v'}}, ['a', Buffer.from('b'), 'c']), 3);
    await router.close(); // no sink: the messages stay in the store
    router = new edgeroute.Router(ALL, {storeDirectory: dir});
    const seen = await new Promise((resolve) => {
      const got = [];
      router.setSink('iothub', (batch) => {
        for (const d of batch.messages()) got.push(d.body.toString() + d.properties.k);
        if (got.length === 3) resolve(got);
      });
    });
    assert.deepStrictEqual(seen, ['av', 'bv', 'cv']);
    await router.close();
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
});

test('updateRoutes is atomic and positioned; sendEncoded re-sends', async () => {
  const router = new edgeroute.Router({schemaVersion: '1.0', routes: {none: 'FROM /messages/* WHERE false INTO $upstream'}});
  const got = [];
  let wake = null;
  router.setSink('iothub', (batch) => {
    got.push(...batch.messages());
    if (wake) wake();
  });
  const next = (count) => new Promise((resolve) => {
    wake = () => { if (got.length >= count) resolve(); };
    wake();
  });
  assert.throws(() => router.updateRoutes('{"schemaVersion": "1.0",\n "routes": {"bad": "FROM /messages INTO"}}'),
                (e) => e.code === 'INVALID_ARGUMENT' && e.line === 2);
  router.updateRoutes(ALL);
  router.send({body: 'once', properties: {k: 'v'}});
  await next(1);
  router.sendEncoded(got[0].encoded);
  await next(2);
  assert.strictEqual(got[1].body.toString(), 'once');
  assert.strictEqual(got[1].properties.k, 'v');
  assert.throws(() => router.sendEncoded(Buffer.from('not a message')), (e) => e.code === 'INVALID_ARGUMENT');
  assert.strictEqual(router.metrics().routeUpdates, 1);
  await router.close();
});
