"""A classroom file-transfer server, written the way the networking exercise describes it.

Usage: python3 classroom_server.py [IP] [PORT]   (defaults 127.0.0.1 12000; port 0 picks one)
Prints "listening on PORT" once bound. Saves each upload as NAME + ".temp" in the
working directory, one thread per client, and deletes the file if the client stops early.
"""
import os
import socket
import sys
import threading

BUFFER_SIZE = 1024


def handle(conn):
    with conn:
        header = conn.recv(BUFFER_SIZE)
        if len(header) < 9:
            return  # closed before a whole header (8 size bytes and a name): nothing to save
        size = int.from_bytes(header[:8], "big")
        name = header[8:].decode()
        conn.send(b"go ahead")
        temp = name + ".temp"
        received = 0
        try:
            with open(temp, "wb") as out:
                while received < size:
                    data = conn.recv(BUFFER_SIZE)
                    if not data:
                        break
                    out.write(data)
                    received += len(data)
        finally:
            if received < size:
                os.remove(temp)


def main():
    ip = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(5)
    print("listening on", server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
