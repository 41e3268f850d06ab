#!/usr/bin/env python3
"""Loopback HTTP(S) server for hutch's image tests. Binds 127.0.0.1 only.

Routes (NAME is a file under --root; no '..', no subdirectories):
  /files/NAME          the file, honouring Range (206, or 416 past the end)
  /norange/NAME        the file, always 200 and whole: a server that ignores Range
  /status/CODE/NAME    an empty response with that status (404, 500, ...)
  /redirect?to=URL     302 to URL, whatever its scheme (file://, http://, ...)
  /loop                302 to itself, forever
  /cut/N/NAME          the first request for this path announces the whole file but sends N bytes
                       and closes the connection; later requests behave like /files/NAME
  /stall/N/NAME        sends N bytes of the file, then nothing until the client gives up

Every request is appended to --log as "GET PATH RANGE" (RANGE is '-' when absent) before it is
answered, so a test can count downloads and see what a resume asked for.
The chosen port is written to --port-file (atomically) once the server accepts connections.
"""
import argparse
import http.server
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse

ARGS = None
LOG_LOCK = threading.Lock()
CUT_DONE = set()
CUT_LOCK = threading.Lock()


def log_request_line(path, rng):
    with LOG_LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
        f.write("GET %s %s\n" % (path, rng or "-"))


def file_path(name):
    if not name or "/" in name or name in (".", ".."):
        return None
    p = os.path.join(ARGS.root, name)
    return p if os.path.isfile(p) else None


def parse_range(header, size):
    """(start, end) inclusive, or None when absent/unsupported, or 'bad' past the end."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[len("bytes="):]
    if "," in spec or "-" not in spec:
        return None
    a, b = spec.split("-", 1)
    if not a.isdigit():
        return None
    start = int(a)
    end = int(b) if b.isdigit() else size - 1
    if start >= size:
        return "bad"
    return start, min(end, size - 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hutch-fixture/1"

    def log_message(self, fmt, *args):  # quiet: the request log is the record
        pass

    def finish_headers(self, length):
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def empty(self, code, extra=None):
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.finish_headers(0)

    def send_file(self, path, honour_range=True, cut_at=None, stall_at=None):
        size = os.path.getsize(path)
        rng = parse_range(self.headers.get("Range"), size) if honour_range else None
        if rng == "bad":
            self.empty(416, {"Content-Range": "bytes */%d" % size})
            return
        start, end = rng if rng else (0, size - 1)
        length = max(0, end - start + 1)
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Accept-Ranges", "bytes" if honour_range else "none")
        self.send_header("Content-Type", "application/octet-stream")
        self.finish_headers(length)
        limit = length
        if cut_at is not None:
            limit = min(limit, cut_at)
        if stall_at is not None:
            limit = min(limit, stall_at)
        with open(path, "rb") as f:
            f.seek(start)
            left = limit
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        self.wfile.flush()
        if stall_at is not None:
            time.sleep(ARGS.stall_seconds)
        if cut_at is not None or stall_at is not None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        log_request_line(url.path, self.headers.get("Range"))
        parts = url.path.split("/")[1:]
        kind = parts[0] if parts else ""
        if kind == "loop":
            self.empty(302, {"Location": "/loop"})
            return
        if kind == "redirect":
            to = urllib.parse.parse_qs(url.query).get("to", [""])[0]
            self.empty(302, {"Location": to})
            return
        try:
            if kind in ("files", "norange") and len(parts) == 2:
                name, arg = parts[1], None
            elif kind in ("status", "cut", "stall") and len(parts) == 3:
                name, arg = parts[2], int(parts[1])
            else:
                self.empty(404)
                return
        except ValueError:
            self.empty(400)
            return
        if kind == "status":
            self.empty(arg)
            return
        path = file_path(urllib.parse.unquote(name))
        if not path:
            self.empty(404)
            return
        if kind == "files":
            self.send_file(path)
        elif kind == "norange":
            self.send_file(path, honour_range=False)
        elif kind == "stall":
            self.send_file(path, stall_at=arg)
        else:
            with CUT_LOCK:
                first = url.path not in CUT_DONE
                CUT_DONE.add(url.path)
            self.send_file(path, cut_at=arg if first else None)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that gives up mid-body (a refused download, a test's ENOSPC) is expected.
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--stall-seconds", type=float, default=60.0)
    ARGS = p.parse_args()
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
