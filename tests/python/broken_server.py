"""Classroom servers with the faults real student programs have, for testing what ftx send reports.

Usage: python3 broken_server.py MODE [PORT]   (port 0 picks one; prints "listening on PORT")
Modes:
  drop-last-chunk  receives 1024-byte chunks and stops before the last short one, then closes
                   (the file loses its tail; the client's last bytes meet a closed socket)
  reset-half       says go ahead, reads half the content, then resets the connection
  silent           reads the header and never answers
  no-read          says go ahead and never reads the content
  no-close         reads everything and never closes
  chatty           reads everything, says "File received" and closes
  one-at-a-time    a correct server without threads: one client at a time
  newline-reply    replies "go ahead\n"
  spin-on-close    loops for ever when a client closes early (never checks for an empty recv)
  crash-after-go-ahead  says go ahead, then the whole server crashes
  fixed-count      counts 1024 bytes for every recv(), whatever it returned: stops early
  write-twice      writes every chunk twice
  exits-after-one  a correct server that exits (status 0) once its first client is served
  stray-temp       does not check the header: a client that closes early leaves an empty NAME.temp
  strict-decode    one client at a time, decodes the name strictly: a name that is not UTF-8
                   kills it
Every mode but stray-temp returns at once on a header shorter than 9 bytes (8 size bytes
and a name), as a correct server does: each mode has its own fault only.
"""
import os
import socket
import struct
import sys
import threading
import time

BUFFER_SIZE = 1024


def handle(conn, mode):
    header = conn.recv(BUFFER_SIZE)
    if len(header) < 9 and mode != "stray-temp":
        conn.close()
        return
    size = int.from_bytes(header[:8], "big")
    name = header[8:].decode() if mode == "strict-decode" else header[8:].decode(errors="replace")
    if mode in ("fixed-count", "write-twice"):
        conn.send(b"go ahead")
        received = 0
        with open(name + ".temp", "wb") as out:
            while received < size:
                data = conn.recv(BUFFER_SIZE)
                if not data:
                    break
                out.write(data)
                if mode == "write-twice":
                    out.write(data)
                received += BUFFER_SIZE if mode == "fixed-count" else len(data)
        conn.close()
        return
    if mode in ("one-at-a-time", "newline-reply", "spin-on-close", "stray-temp", "strict-decode"):
        conn.send(b"go ahead\n" if mode == "newline-reply" else b"go ahead")
        received = 0
        with open(name + ".temp", "wb") as out:
            while received < size:
                data = conn.recv(BUFFER_SIZE)
                if not data and mode == "spin-on-close":
                    continue  # the student bug: an empty recv is taken for "nothing yet"
                if not data:
                    break
                out.write(data)
                received += len(data)
        if received < size:
            os.remove(name + ".temp")
        conn.close()
        return
    if mode == "crash-after-go-ahead":
        conn.send(b"go ahead")
        os._exit(3)
    if mode == "silent":
        time.sleep(3600)
        return
    conn.send(b"go ahead")
    if mode == "no-read":
        time.sleep(3600)
        return
    received = 0
    if mode == "drop-last-chunk":
        with open(name + ".temp", "wb") as out:
            while size - received >= BUFFER_SIZE:
                data = conn.recv(BUFFER_SIZE)
                if not data:
                    break
                out.write(data)
                received += len(data)
        conn.close()
        return
    if mode == "reset-half":
        while received < size // 2:
            data = conn.recv(min(BUFFER_SIZE, size // 2 - received))
            if not data:
                break
            received += len(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        return
    while received < size:
        data = conn.recv(BUFFER_SIZE)
        if not data:
            break
        received += len(data)
    if mode == "no-close":
        time.sleep(3600)
        return
    if mode == "chatty":
        conn.send(b"File received\n")
    conn.close()


def main():
    mode = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(50)
    print("listening on", server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        if mode in ("one-at-a-time", "strict-decode"):
            handle(conn, mode)
        elif mode == "exits-after-one":
            handle(conn, mode)
            sys.exit(0)
        else:
            threading.Thread(target=handle, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    main()
