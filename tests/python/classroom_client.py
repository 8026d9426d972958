"""A classroom file-transfer client, written the way the networking exercise describes it.

Usage: python3 classroom_client.py FILE [IP] [PORT]   (defaults 127.0.0.1 12000)
Sends the size and the name exactly as typed in one message, waits for "go ahead",
then sends the file in BUFFER_SIZE pieces and closes.
"""
import os
import socket
import sys

BUFFER_SIZE = 1024


def main():
    name = sys.argv[1]
    ip = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 12000
    size = os.path.getsize(name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((ip, port))
    sock.send(size.to_bytes(8, "big") + name.encode())
    if sock.recv(BUFFER_SIZE) != b"go ahead":
        raise Exception("Bad server response - was not go ahead!")
    with open(name, "rb") as f:
        while True:
            data = f.read(BUFFER_SIZE)
            if not data:
                break
            sock.sendall(data)
    sock.close()


if __name__ == "__main__":
    main()
