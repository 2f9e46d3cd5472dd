"""The DNS wire side: UDP and TCP listeners that decode queries with dnslib and answer from a Resolver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from skiff.dns.resolver import Resolver

log = logging.getLogger("skiff.dns")

UDP_DEFAULT_SIZE = 512
UDP_MAX_SIZE = 4096
TCP_IDLE_SECONDS = 10.0


def answer_packet(resolver: Resolver, data: bytes, ready: Callable[[], bool], udp: bool) -> bytes | None:
    """The reply to one query message, or None for input that is not a DNS query at all."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError):
        if len(data) < 12:
            return None
        # A header we can read: answer FORMERR with the query id, as servers do for malformed bodies.
        reply = DNSRecord()
        reply.header.id = struct.unpack("!H", data[:2])[0]
        reply.header.qr = 1
        reply.header.rcode = RCODE.FORMERR
        return reply.pack()
    if request.header.qr or len(request.questions) != 1:
        reply = request.reply()
        reply.header.rcode = RCODE.FORMERR
        return reply.pack()
    reply = request.reply(ra=0, aa=1)
    question = request.q
    if not ready():
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()
    result = resolver.resolve(str(question.qname), question.qtype)
    reply.header.rcode = result.rcode
    if result.rcode == RCODE.REFUSED:
        reply.header.aa = 0
    for rr in result.answers:
        reply.add_answer(rr)
    for rr in result.authority:
        reply.add_auth(rr)
    for rr in result.additional:
        reply.add_ar(rr)
    packed = reply.pack()
    if udp:
        limit = _udp_limit(request)
        if len(packed) > limit:
            # Too big for this datagram: send the header and question with TC set; the client retries on TCP.
            truncated = request.reply(ra=0, aa=1)
            truncated.header.rcode = result.rcode
            truncated.header.tc = 1
            packed = truncated.pack()
    log.debug("%s %s → %s (%d answers)", QTYPE.get(question.qtype), question.qname, RCODE.get(result.rcode),
              len(result.answers))  # fmt: skip
    return packed


def _udp_limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(UDP_DEFAULT_SIZE, min(int(rr.rclass), UDP_MAX_SIZE))
    return UDP_DEFAULT_SIZE


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, ready: Callable[[], bool]) -> None:
        self.resolver = resolver
        self.ready = ready
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = answer_packet(self.resolver, data, self.ready, udp=True)
        except Exception:
            log.exception("answering a query from %s failed", addr[0])
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer:
    def __init__(self, resolver: Resolver, ready: Callable[[], bool], bind: str, port: int) -> None:
        self.resolver = resolver
        self.ready = ready
        self.bind = bind
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self.resolver, self.ready), local_addr=(self.bind, self.port)
        )
        self._tcp = await asyncio.start_server(self._serve_tcp, self.bind, self.port)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_SECONDS)
                reply = answer_packet(self.resolver, data, self.ready, udp=False)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("serving a TCP DNS connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
