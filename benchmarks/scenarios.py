"""What is measured: the servers, their transports, and the scenario sets of each mode."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBSUB_PYTHON = ROOT / "benchmarks" / ".venv-pubsub" / "bin" / "python"
REDIS_URL = "redis://127.0.0.1:6379"


@dataclass(frozen=True)
class Server:
    """One server app and where its streams and publish endpoint live (``{room}`` is per run)."""

    key: str
    label: str
    app: str
    sse_path: str | None
    ws_path: str | None
    publish_path: str
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    ws_client: str = "ws"
    #: Names of the only scenarios this server runs in (empty: all of them).
    only_in: tuple[str, ...] = ()
    #: uvicorn worker processes.
    workers: int = 1
    #: A broker started for each run and stopped after it (``"kafka"``: a private tansu),
    #: for brokers the machine does not run as a service.
    private_broker: str | None = None
    #: Run only when named with ``--only``: servers that compare brokers, not frameworks.
    opt_in: bool = False
    #: What starts it: ``"uvicorn"`` (``python -m uvicorn``), or ``"fastapi-streaming"``
    #: (``fastapi-streaming run``: the garbage collector frozen and tuned at startup).
    launcher: str = "uvicorn"


BARE = Server("bare", "bare ASGI (bound)", "benchmarks.servers.bare:app", "/sse", "/ws", "/publish")
FASTAPI_FLOOR = Server(
    "fastapi-bare",
    "bound's endpoints in FastAPI (framework floor)",
    "benchmarks.servers.fastapi_floor:app",
    "/sse",
    "/ws",
    "/publish",
    # Where the targets are set: it explains them, and the full matrix stays under 20 minutes.
    only_in=(
        "SSE 100 x 100/s",
        "SSE 1,000 x 100/s",
        "SSE 1,000 x 1,000/s",
        "SSE 5,000 x 10/s",
        "WS 100 x 100/s",
        "WS 1,000 x 100/s",
        "WS 1,000 x 1,000/s",
        "idle SSE x 5,000",
    ),
)
STREAMING_MEMORY = Server(
    "fs-memory",
    "fastapi-streaming memory://",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": "memory://"},
)
STREAMING_REDIS = Server(
    "fs-redis",
    "fastapi-streaming redis://",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": REDIS_URL},
)
#: The same app under ``fastapi-streaming run``, which freezes the startup heap (``gc.freeze()``):
#: what the collector's full passes cost the tail latency when plain uvicorn serves the app.
STREAMING_MEMORY_RUN = Server(
    "fs-memory-run",
    "fastapi-streaming memory:// (fastapi-streaming run)",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": "memory://"},
    only_in=("SSE 100 x 100/s", "SSE 1,000 x 100/s", "SSE 1,000 x 1,000/s", "WS 1,000 x 100/s"),
    opt_in=True,
    launcher="fastapi-streaming",
)
#: Where the brokers are compared: what each costs per delivered event, beside memory://.
BROKER_COST = ("SSE 1,000 x 100/s", "SSE 1,000 x 1,000/s")
STREAMING_REDIS_STREAM = Server(
    "fs-redis-stream",
    "fastapi-streaming redis-stream://",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": REDIS_URL.replace("redis://", "redis-stream://")},
    only_in=BROKER_COST,
    opt_in=True,
)
STREAMING_KAFKA = Server(
    "fs-kafka",
    "fastapi-streaming kafka:// (tansu)",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    only_in=BROKER_COST,
    private_broker="kafka",
    opt_in=True,
)
#: Where two workers are measured against one (both on Redis, which carries events between them).
SCALE_OUT = ("scale-out SSE 1,000 x 1,000/s", "scale-out SSE 10,000 x 10/s")
STREAMING_REDIS_2W = Server(
    "fs-redis-2w",
    "fastapi-streaming redis:// 2 workers",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": REDIS_URL},
    only_in=SCALE_OUT,
    workers=2,
)
#: The servers a scale-out scenario compares.
SCALE_OUT_SERVERS = ("fs-redis", "fs-redis-2w")
#: What managing an API costs: the same app with a plan on every connection and metrics on.
COST = ("cost SSE 1,000 x 100/s", "cost SSE 1,000 x 1,000/s", "cost WS 1,000 x 1,000/s")
STREAMING_MANAGED = Server(
    "fs-managed",
    "fastapi-streaming memory:// + plan + metrics",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={"BENCH_BROKER": "memory://", "BENCH_MANAGED": "1"},
    only_in=COST,
)
STREAMING_REDIS_MANAGED = Server(
    "fs-redis-managed",
    "fastapi-streaming redis:// + plan (Redis counters) + metrics",
    "benchmarks.servers.streaming:app",
    "/streams/sse/bench/{room}",
    "/streams/ws/bench/{room}",
    "/streams/publish/bench/{room}",
    env={
        "BENCH_BROKER": REDIS_URL,
        "BENCH_MANAGED": "1",
        "BENCH_LIMITS_STORAGE": REDIS_URL + "/0",
    },
    only_in=COST,
)
#: The servers a cost scenario compares: each managed one with the same app unmanaged.
COST_PAIRS = (("fs-memory", "fs-managed"), ("fs-redis", "fs-redis-managed"))
COST_SERVERS = tuple(key for pair in COST_PAIRS for key in pair)
HANDWRITTEN = Server(
    "handwritten",
    "FastAPI + sse-starlette + broadcaster",
    "benchmarks.servers.handwritten:app",
    "/sse",
    "/ws",
    "/publish",
)
PUBSUB = Server(
    "pubsub",
    "fastapi-websocket-pubsub",
    "benchmarks.servers.pubsub:app",
    None,
    "/pubsub",
    "/publish",
    python=str(PUBSUB_PYTHON),
    ws_client="pubsub",
)
SERVERS = [
    BARE, FASTAPI_FLOOR, STREAMING_MEMORY, STREAMING_REDIS, STREAMING_REDIS_2W, HANDWRITTEN,
    PUBSUB, STREAMING_REDIS_STREAM, STREAMING_KAFKA, STREAMING_MANAGED, STREAMING_REDIS_MANAGED,
    STREAMING_MEMORY_RUN,
]  # fmt: skip
#: Each transport's upper bound and the server every other is compared with.
BOUND = BARE
REFERENCE = STREAMING_MEMORY


@dataclass(frozen=True)
class Variant:
    """A server measured over one transport."""

    server: Server
    transport: str  # "sse" or "ws"

    @property
    def key(self) -> str:
        return f"{self.server.key}/{self.transport}"

    @property
    def label(self) -> str:
        return f"{self.server.label} {'SSE' if self.transport == 'sse' else 'WebSocket'}"

    @property
    def client_kind(self) -> str:
        return "sse" if self.transport == "sse" else self.server.ws_client

    def stream_path(self, room: str) -> str:
        path = self.server.sse_path if self.transport == "sse" else self.server.ws_path
        assert path is not None
        return path.format(room=room)

    def publish_path(self, room: str) -> str:
        return self.server.publish_path.format(room=room)


def variants(transport: str) -> list[Variant]:
    attr = "sse_path" if transport == "sse" else "ws_path"
    return [Variant(s, transport) for s in SERVERS if getattr(s, attr) is not None]


@dataclass(frozen=True)
class Scenario:
    """``kind`` is ``stream`` (M clients, R events/s for T s), ``scaleout`` (the same, one
    worker against two on Redis), ``cost`` (the same, with and without plans and metrics),
    ``idle`` or ``websub``."""

    kind: str
    transport: str
    connections: int
    rate: float = 0.0
    duration: float = 0.0
    #: Keep-alive connections the publisher pipelines its POSTs over. uvicorn answers one
    #: connection's requests one at a time, so on a broker that acknowledges over the network
    #: each connection gets about one event into every turn of the fan-out: at saturation the
    #: events a client's write carries, and so the CPU per delivered event, follow this count.
    publishers: int = 4

    @property
    def name(self) -> str:
        return self._base_name + (f", {self.publishers} publishers" if self.publishers != 4 else "")

    @property
    def _base_name(self) -> str:
        if self.kind == "idle":
            return f"idle {self.transport.upper()} x {self.connections:,}"
        if self.kind == "scaleout":
            return f"scale-out SSE {self.connections:,} x {self.rate:,.0f}/s"
        if self.kind == "cost":
            return f"cost {self.transport.upper()} {self.connections:,} x {self.rate:,.0f}/s"
        if self.kind == "websub":
            return f"WebSub {self.connections:,} subscribers x {self.rate:,.0f}/s"
        return f"{self.transport.upper()} {self.connections:,} x {self.rate:,.0f}/s"


#: Combinations of the M x R matrix that are not run, and why.
SKIPPED = {
    (5000, 100): "500,000 deliveries/s offered: beyond the ~310,000/s the bound reaches on 2 cores;"
    " 1,000 x 1,000 already measures saturation",
    (5000, 1000): "5,000,000 deliveries/s offered: far beyond what 2 cores can push",
}


@dataclass(frozen=True)
class Mode:
    name: str
    repetitions: int
    scenarios: list[Scenario]
    skipped: dict[str, str] = field(default_factory=dict)


#: One worker against two, on Redis: saturated (where a second core can help), and 10,000
#: connections at 10/s (WSO2's 2-vCPU gateway holds 5,000).
SCALE_OUT_SCENARIOS = [
    Scenario("scaleout", "sse", 1000, 1000, 3.0),
    Scenario("scaleout", "sse", 10000, 10, 3.0),
]


def _matrix(transport: str, pairs: list[tuple[int, int]], duration: float) -> list[Scenario]:
    return [Scenario("stream", transport, m, r, duration) for m, r in pairs]


def mode(name: str) -> Mode:
    if name == "quick":
        return Mode(
            "quick",
            1,
            [
                *_matrix("sse", [(100, 100)], 2.0),
                *_matrix("ws", [(100, 100)], 2.0),
                Scenario("idle", "sse", 500),
                Scenario("websub", "websub", 200, 5, 2.0),
            ],
        )
    if name == "medium":
        return Mode(
            "medium",
            3,
            [
                *_matrix("sse", [(100, 100), (1000, 100), (1000, 1000), (5000, 10)], 3.0),
                *_matrix("ws", [(100, 100), (1000, 100), (1000, 1000)], 3.0),
                Scenario("idle", "sse", 5000),
                *SCALE_OUT_SCENARIOS,
                Scenario("websub", "websub", 1000, 5, 4.0),
            ],
        )
    if name == "full":
        every = [(m, r) for m in (100, 1000, 5000) for r in (10, 100, 1000)]
        run = [pair for pair in every if pair not in SKIPPED]
        return Mode(
            "full",
            3,
            [
                Scenario("websub", "websub", 1000, 5, 4.0),
                Scenario("idle", "sse", 5000),
                *_matrix("sse", run, 3.0),
                *_matrix("ws", [(100, 100), (1000, 100), (1000, 1000)], 3.0),
                *SCALE_OUT_SCENARIOS,
            ],
            skipped={f"{m:,} x {r:,}/s": why for (m, r), why in SKIPPED.items()},
        )
    if name == "cost":
        return Mode(
            "cost",
            3,
            [
                Scenario("cost", "sse", 1000, 100, 3.0),  # not saturated: CPU per event
                Scenario("cost", "sse", 1000, 1000, 3.0),  # saturated: deliveries per second
                Scenario("cost", "ws", 1000, 1000, 3.0),
            ],
        )
    raise ValueError(f"unknown mode {name!r}: quick, medium, full or cost")
