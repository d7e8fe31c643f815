// A node net echo server (libuv: accept4, epoll, non-blocking): the
// event-loop daemon of the real-program tests.
//   node echo_node.js PORT HOST RECORD PORTFILE [GREETING]
// Writes GREETING first, echoes until EOF, and records each connection
// like the C servers (srv.h): "accept peer=.. local=..", then
// "close peer=.. local=.. greet=ok|CODE|- in=N sha256=HEX end=eof|error:CODE".
// peer is what node reports as the remote address (getpeername).
'use strict';
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');

const [port, host, record, portfile, greeting] = process.argv.slice(2);
const fmt = (a, p) => (a.includes(':') ? `[${a}]` : a) + ':' + p;

const server = net.createServer((sock) => {
  const peer = fmt(sock.remoteAddress, sock.remotePort);
  const local = fmt(sock.localAddress, sock.localPort);
  const h = crypto.createHash('sha256');
  let n = 0;
  let greet = greeting ? 'pending' : '-';
  let end = '?';
  fs.appendFileSync(record, `accept peer=${peer} local=${local}\n`);
  if (greeting)
    sock.write(greeting, (err) => { greet = err ? err.code : 'ok'; });
  sock.on('data', (d) => { n += d.length; h.update(d); sock.write(d); });
  sock.on('end', () => { end = 'eof'; sock.end(); });
  sock.on('error', (e) => { if (end === '?') end = 'error:' + e.code; });
  sock.on('close', () => fs.appendFileSync(record,
    `close peer=${peer} local=${local} greet=${greet} in=${n} ` +
    `sha256=${h.digest('hex')} end=${end}\n`));
});
server.listen(Number(port), host, () => {
  fs.writeFileSync(portfile + '.tmp', `${server.address().port}\n`);
  fs.renameSync(portfile + '.tmp', portfile);
});
// Stops by itself, like every test server.
setTimeout(() => process.exit(0), 300000).unref();
