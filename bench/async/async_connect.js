// async_connect.js MODE PORT N CA: node's loop establishes N concurrent
// connections to 127.0.0.1:PORT and moves one line each. MODE plain: `net`
// (run under tlsshim); MODE tls: node's own `tls`, verified against CA.
// Prints the seconds.
'use strict';
const fs = require('fs'), net = require('net'), tls = require('tls');
const [mode, port, n, caFile] = [process.argv[2], Number(process.argv[3]),
                                 Number(process.argv[4]), process.argv[5]];
const ca = mode === 'tls' ? fs.readFileSync(caFile) : null;
const t0 = process.hrtime.bigint();
let left = n;
for (let i = 0; i < n; i++) {
  const msg = `x${i}\n`;
  const go = (s) => s.write(msg);
  const s = mode === 'tls'
    ? tls.connect({host: '127.0.0.1', port, ca, servername: ''}, () => go(s))
    : net.connect({host: '127.0.0.1', port}, () => go(s));
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d) => {
    got += d;
    if (got.length >= msg.length) {
      s.destroy();
      if (--left === 0) {
        console.log((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(4));
      }
    }
  });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
}
