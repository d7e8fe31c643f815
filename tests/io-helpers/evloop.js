// Issue 4: node's event loop opens N connections at once (net, plain
// API: tlsshim upgrades them) to a server that delays each handshake,
// while a timer ticks in the same loop.  Counts the ticks that fire while
// connections are still being established: a connect() that did the
// handshake inline would block the loop (0 ticks).  Every connection
// then echoes a payload, checked byte for byte.
//   node evloop.js PORT N BYTES MIN_TICKS   (timer: every 5 ms)
'use strict';
const net = require('net');
const crypto = require('crypto');
const [port, n, bytes, minTicks] = process.argv.slice(2).map(Number);
let ticks = 0, pending = n, done = 0, failed = 0, ticksDuring = -1;
const timer = setInterval(() => { ticks++; }, 5);
const payload = crypto.randomBytes(bytes);
const start = ticks;
function finish() {
  clearInterval(timer);
  console.log(`connections ${n}, echoed ${done}, failed ${failed}, ` +
              `ticks while connecting ${ticksDuring}, ticks total ${ticks}`);
  process.exit(done === n && failed === 0 && ticksDuring >= minTicks ? 0 : 1);
}
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: '127.0.0.1', port });
  const chunks = [];
  let got = 0;
  s.on('connect', () => {
    if (--pending === 0) ticksDuring = ticks - start;
    s.write(payload);
  });
  s.on('data', (d) => {
    chunks.push(d);
    got += d.length;
    if (got >= bytes) {
      if (Buffer.concat(chunks).subarray(0, bytes).equals(payload)) done++;
      else failed++;
      s.destroy();
      if (done + failed === n) finish();
    }
  });
  s.on('error', (e) => {
    console.log(`connection ${i}: ${e.message}`);
    failed++;
    if (done + failed === n) finish();
  });
}
setTimeout(() => { console.log('timeout'); finish(); }, 60000).unref();
