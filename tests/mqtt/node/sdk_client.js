// Drives the Azure IoT Node.js device SDK (azure-iot-device with the
// azure-iot-device-mqtt transport) exactly as a module or leaf device would,
// for tests/mqtt/azure_sdk_test.py. One role per process:
//
//   node sdk_client.js '<json config>'
//
// Every event is one JSON line on stdout ({"event": ...}); the test reads
// them. Config: {"role", "cs" (connection string), "ca" (PEM path),
// "timeoutMs", ...role fields}. The process exits 0 when its role completed,
// 1 on an SDK error, 3 when timeoutMs passed first.
'use strict';

const fs = require('fs');
const readline = require('readline');
const {
  Client,
  ModuleClient,
  Message,
  X509AuthenticationProvider,
  SharedAccessKeyAuthenticationProvider,
} = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const config = JSON.parse(process.argv[2]);

function emit(event, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ event }, fields || {})) + '\n');
}

function errorFields(err) {
  return {
    name: err && (err.constructor && err.constructor.name || err.name),
    message: String(err && err.message || err),
  };
}

// The SDK's own operations have no deadline (an unanswered twin request
// waits forever): the whole role has one.
const guard = setTimeout(() => {
  emit('timeout', { afterMs: config.timeoutMs });
  process.exit(3);
}, config.timeoutMs || 60000);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function openClient(ClientType) {
  const client = ClientType.fromConnectionString(config.cs, Mqtt);
  client.on('error', (err) => emit('client-error', errorFields(err)));
  await client.setOptions({ ca: fs.readFileSync(config.ca, 'utf8') });
  await client.open();
  emit('opened');
  return client;
}

function makeMessage(spec, n) {
  const message = new Message(spec.body.replace('{n}', String(n)));
  if (spec.messageId) message.messageId = spec.messageId.replace('{n}', String(n));
  if (spec.correlationId) message.correlationId = spec.correlationId;
  if (spec.contentType) message.contentType = spec.contentType;
  if (spec.contentEncoding) message.contentEncoding = spec.contentEncoding;
  for (const [key, value] of Object.entries(spec.properties || {})) {
    message.properties.add(key, value.replace('{n}', String(n)));
  }
  return message;
}

function describe(message) {
  const properties = {};
  for (let i = 0; i < message.properties.count(); ++i) {
    const p = message.properties.getItem(i);
    properties[p.key] = p.value;
  }
  return {
    data: message.data.toString(),
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    properties,
  };
}

// Sends config.count messages (output events for a module, events for a
// device), each awaiting its PUBACK.
async function send(ClientType) {
  const client = await openClient(ClientType);
  for (let n = 0; n < config.count; ++n) {
    const message = makeMessage(config.message, n);
    if (config.output) {
      await client.sendOutputEvent(config.output, message);
    } else {
      await client.sendEvent(message);
    }
    emit('sent', { n });
  }
  await client.close();
  emit('closed');
}

// Receives config.count input messages and completes each one.
async function receive() {
  const client = await openClient(ModuleClient);
  let received = 0;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  client.on('inputMessage', (inputName, message) => {
    emit('message', Object.assign({ input: inputName }, describe(message)));
    client.complete(message, (err) => {
      if (err) {
        emit('complete-error', errorFields(err));
        process.exit(1);
      }
      emit('completed');
      if (++received === config.count) finish();
    });
  });
  // The subscription is made when the listener is added; give its SUBACK
  // time to arrive before the test starts sending.
  await sleep(config.settleMs || 500);
  emit('listening');
  await done;
  await client.close();
  emit('closed');
}

// Opens and reports how that went (a refused key).
async function open() {
  try {
    const client = await openClient(config.device ? Client : ModuleClient);
    await client.close();
  } catch (err) {
    emit('open-error', errorFields(err));
  }
}

// A leaf device with an X.509 certificate. The connection-string form
// (x509=true) ignores GatewayHostName, so the credentials are given as an
// authentication provider, which honours it.
async function x509() {
  const provider = new X509AuthenticationProvider({
    host: config.hub,
    deviceId: config.deviceId,
    gatewayHostName: config.gatewayHostName,
    x509: {
      cert: fs.readFileSync(config.cert, 'utf8'),
      key: fs.readFileSync(config.key, 'utf8'),
    },
  });
  const client = Client.fromAuthenticationProvider(provider, Mqtt);
  client.on('error', (err) => emit('client-error', errorFields(err)));
  await client.setOptions({ ca: fs.readFileSync(config.ca, 'utf8') });
  try {
    await client.open();
  } catch (err) {
    emit('open-error', errorFields(err));
    return;
  }
  emit('opened');
  for (let n = 0; n < config.count; ++n) {
    await client.sendEvent(makeMessage(config.message, n));
    emit('sent', { n });
  }
  await client.close();
  emit('closed');
}

// The twin of a module, driven by commands on stdin, one per line:
//   get | report <json> | watch | exit
async function twin() {
  const client = await openClient(config.device ? Client : ModuleClient);
  const twinObject = await client.getTwin();
  emit('twin', { properties: plain(twinObject.properties) });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const space = line.indexOf(' ');
    const command = space < 0 ? line : line.slice(0, space);
    const argument = space < 0 ? '' : line.slice(space + 1);
    if (command === 'get') {
      const fresh = await client.getTwin();
      emit('twin', { properties: plain(fresh.properties) });
    } else if (command === 'report') {
      await new Promise((resolve, reject) => {
        twinObject.properties.reported.update(JSON.parse(argument),
          (err) => (err ? reject(err) : resolve()));
      });
      emit('reported');
    } else if (command === 'watch') {
      // Registering the listener subscribes to desired-property updates
      // and replays the current desired document at once.
      twinObject.on('properties.desired', (patch) => emit('desired', { patch: plain(patch) }));
      await sleep(config.settleMs || 500);
      emit('watching');
    } else if (command === 'exit') {
      break;
    } else {
      emit('bad-command', { line });
    }
  }
  await client.close();
  emit('closed');
}

// The SAS token the SDK itself would send for this connection string.
async function sas() {
  const provider = SharedAccessKeyAuthenticationProvider.fromConnectionString(config.cs);
  const credentials = await provider.getDeviceCredentials();
  provider.stop();
  emit('sas', { token: credentials.sharedAccessSignature });
}

// Twin properties without the SDK's methods and cycles.
function plain(value) {
  return JSON.parse(JSON.stringify(value, (key, v) => (typeof v === 'function' ? undefined : v)));
}

const roles = {
  'module-send': () => send(ModuleClient),
  'device-send': () => send(Client),
  'module-receive': receive,
  open,
  x509,
  twin,
  sas,
};

const role = roles[config.role];
if (!role) {
  emit('bad-role', { role: config.role });
  process.exit(2);
}
role().then(() => {
  clearTimeout(guard);
  process.exit(0);
}, (err) => {
  emit('error', errorFields(err));
  process.exit(1);
});
