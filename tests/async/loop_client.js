// loop_client.js PORT N: node's own event loop opens N concurrent `net`
// connections to 127.0.0.1:PORT (plain as far as node knows), each sends a
// line and reads it back, while a timer ticks every 5 ms. Counts the ticks
// before the first connection is made; see loop_client.py for why.
'use strict';
const net = require('net');
const port = Number(process.argv[2]), n = Number(process.argv[3]);
let opening = 0, ticksOpening = 0, connectedN = 0, ticksBefore = 0, maxOpening = 0, echoed = 0, done = 0;
let firstError = null;

const timer = setInterval(() => {
  if (!connectedN) ticksBefore++;
  if (opening) {
    ticksOpening++;
    maxOpening = Math.max(maxOpening, opening);
  }
}, 5);
const guard = setTimeout(() => finish(), 60000);

function finish() {
  clearInterval(timer);
  clearTimeout(guard);
  console.log(`conns=${n} echoed=${echoed} ticks_before_first_connect=${ticksBefore} ` +
              `max_opening_at_tick=${maxOpening}`);
  if (firstError) console.error('first error:', firstError.message);
  process.exit(echoed === n ? 0 : 1);
}

function settle() {
  if (++done === n) finish();
}

for (let i = 0; i < n; i++) {
  const msg = `payload ${i}\n`;
  let got = '', connected = false;
  opening++;
  const s = net.connect({host: '127.0.0.1', port}, () => {
    connected = true;
    connectedN++;
    opening--;
    s.write(msg);
  });
  s.setEncoding('utf8');
  s.on('data', (d) => {
    got += d;
    if (got.length >= msg.length) {
      if (got === msg) echoed++;
      s.destroy();
      settle();
    }
  });
  s.on('error', (e) => {
    if (!connected) opening--;
    firstError = firstError || e;
    settle();
  });
}
