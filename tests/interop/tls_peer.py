#!/usr/bin/env python3
"""Python's ssl module (asyncio with ssl=) as a peer of weft's TLS streams,
for tests/interop/tls.c.

  tls_peer.py server CERT KEY ALPN
      Listen on 127.0.0.1, an ephemeral port, print "PORT <n>" and serve:
      echo every byte back until the client's end of stream, then close
      with close_notify. Runs until its standard input reaches end of file
      (the test closes it, or dies), so it never outlives the test.

  tls_peer.py client PORT CAFILE ALPN
      Connect to 127.0.0.1:PORT verifying the certificate against CAFILE
      for the name localhost, offering ALPN; send lines and 1 MiB, check
      the echo, close with close_notify; print
      "OK <version> <cipher> <alpn>" and exit 0, or the error and exit 1.
"""
import asyncio
import hashlib
import os
import ssl
import sys


async def serve(cert, key, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols([alpn])

    handlers = set()

    async def handle(reader, writer):
        handlers.add(asyncio.current_task())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError) as e:
            print("connection error:", repr(e), file=sys.stderr, flush=True)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
            handlers.discard(asyncio.current_task())

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    print("PORT", port, flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin():
        if not os.read(0, 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(0, on_stdin)
    await stdin_closed
    server.close()
    await server.wait_closed()
    # Let connections still closing finish (the client may have gone an
    # instant before Python saw it).
    if handlers:
        await asyncio.wait(handlers, timeout=10)


async def client(port, cafile, alpn):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols([alpn])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    obj = writer.get_extra_info("ssl_object")
    for line in (b"hello from python\n", b"second line\n"):
        writer.write(line)
        got = await reader.readexactly(len(line))
        if got != line:
            raise RuntimeError("echo mismatch: %r != %r" % (got, line))
    blob = hashlib.sha256(b"weft").digest() * (1 << 15)  # 1 MiB
    writer.write(blob)
    await writer.drain()
    got = await reader.readexactly(len(blob))
    if got != blob:
        raise RuntimeError("1 MiB echo differs")
    writer.close()
    await writer.wait_closed()
    print("OK", obj.version(), obj.cipher()[0], obj.selected_alpn_protocol(),
          flush=True)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        try:
            asyncio.run(asyncio.wait_for(
                client(int(sys.argv[2]), sys.argv[3], sys.argv[4]), 60))
        except Exception as e:  # report any failure as the test's reason
            print("FAILED", repr(e), flush=True)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
