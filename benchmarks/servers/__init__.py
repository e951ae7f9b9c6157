"""The servers the benchmark compares, each an ASGI app that uvicorn runs in its own process.

Every app offers an SSE stream, a WebSocket stream (fastapi-websocket-pubsub: WebSocket only)
and an HTTP ``POST`` that publishes one event to every connected client.
"""
