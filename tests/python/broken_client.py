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
  split-header      sends the size and the name in two writes, one right after the other
  text-mode         reads the file as text after go ahead, and crashes on bytes that are not UTF-8
  connects-only     connects and closes, sending nothing
  template          prints the error on a bad reply and exits 0, as a try/except around the
                    whole program does
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
    if mode == "connects-only":
        sock.close()
        return
    if mode == "little-endian":
        sock.send(size.to_bytes(8, "little") + name.encode())
    elif mode == "text-header":
        sock.send(("%d,%s" % (size, name)).encode())
    elif mode == "split-header":
        sock.send(size.to_bytes(8, "big"))
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
        if mode == "text-mode":
            with open(name) as f:
                content = f.read().encode()
        sock.sendall(content)
    if mode == "never-closes":
        time.sleep(3600)
    sock.close()


if __name__ == "__main__":
    if sys.argv[1] == "template":
        try:
            main()
        except Exception as error:
            print(error)
    else:
        main()
