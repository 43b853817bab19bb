"""python-http: the example app unik builds into a unikernel, on the standard library's http.server."""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    def reply(self, body, status=200):
        data = body if isinstance(body, bytes) else str(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ping_test":
            self.reply("pong")
        elif url.path == "/env_test":
            self.reply(os.environ.get("KEY", ""))
        elif url.path == "/mount_test":
            self.read_file("/data/data.txt")
        elif url.path == "/write_test":
            # /write_test?name=N&data=D writes D to /data/N: the app keeps state on its volume
            try:
                with open(os.path.join("/data", os.path.basename(q.get("name", ""))), "w") as f:
                    f.write(q.get("data", ""))
                self.reply("written")
            except OSError as e:
                self.reply(str(e), 500)
        elif url.path == "/read_test":
            self.read_file(os.path.join("/data", os.path.basename(q.get("name", ""))))
        elif url.path == "/log_test":
            print(q.get("line", ""), flush=True)
            self.reply("logged")
        elif url.path == "/sleep_test":
            start = time.monotonic()
            time.sleep(int(q.get("ms", "0") or 0) / 1000)
            self.reply(int((time.monotonic() - start) * 1000))
        elif url.path == "/exit_test":
            code = int(q.get("code", "0") or 0)
            self.reply("exiting")
            threading.Timer(0.1, lambda: os._exit(code)).start()
        else:
            self.reply("not found", 404)

    def read_file(self, path):
        try:
            with open(path, "rb") as f:
                self.reply(f.read())
        except OSError as e:
            self.reply(str(e), 404)

    def log_message(self, format, *args):
        pass


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    print(f"python-http listening on :{port} (args: {' '.join(sys.argv[1:])})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
