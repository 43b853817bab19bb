// node-http is the example app unik builds into a unikernel: a plain node:http server.
'use strict';
const http = require('node:http');
const fs = require('node:fs');

const port = Number(process.env.PORT || 8080);

const server = http.createServer((req, res) => {
  const url = new URL(req.url || '/', 'http://localhost');
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
  };
  switch (url.pathname) {
    case '/ping_test':
      return send(200, 'pong');
    case '/env_test':
      return send(200, process.env.KEY || '');
    case '/mount_test':
      fs.readFile('/data/data.txt', (err, data) => (err ? send(404, err.message + '\n') : send(200, data)));
      return;
    default:
      return send(404, 'not found\n');
  }
});

// unik stop sends SIGTERM through the guest init: close and exit with the usual status
process.on('SIGTERM', () => {
  server.close();
  process.exit(143);
});

server.listen(port, () => {
  console.log(`node-http listening on :${port}` + (process.argv.length > 2 ? ` (args: ${process.argv.slice(2).join(' ')})` : ''));
});
