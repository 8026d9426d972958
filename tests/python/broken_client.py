"""Classroom clients with the faults real student programs have, for testing `ftx check client`.

Usage: python3 broken_client.py MODE FILE [IP] [PORT]
Modes:
  good              the exercise's client, done right
  before-go-ahead   sends the content right after the header, without waiting for go ahead
  little-endian     sends the size little-endian
  text-header       sends the header as text: "SIZE,NAME"
  one-short         sends one byte less than the size
  never-closes      sends everything, then never closes
  ignores-reply     sends the content whatever the reply says
  split-header      sends the size and the name in two writes
"""
import os
import socket
import sys
import time

BUFFER_SIZE = 1024


def main():
    mode, name = sys.argv[1], sys.argv[2]
    ip = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 12000
    size = os.path.getsize(name)
    with open(name, "rb") as f:
        content = f.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((ip, port))
    if mode == "little-endian":
        sock.send(size.to_bytes(8, "little") + name.encode())
    elif mode == "text-header":
        sock.send(("%d,%s" % (size, name)).encode())
    elif mode == "split-header":
        sock.send(size.to_bytes(8, "big"))
        time.sleep(0.2)
        sock.send(name.encode())
    elif mode == "before-go-ahead":
        sock.send(size.to_bytes(8, "big") + name.encode())
        sock.sendall(content)
    else:
        sock.send(size.to_bytes(8, "big") + name.encode())
    if mode != "before-go-ahead":
        reply = sock.recv(BUFFER_SIZE)
        if reply != b"go ahead" and mode != "ignores-reply":
            raise Exception("Bad server response - was not go ahead!")
        if mode == "one-short":
            content = content[:-1]
        sock.sendall(content)
    if mode == "never-closes":
        time.sleep(3600)
    sock.close()


if __name__ == "__main__":
    main()
