"""Streaming APIs for FastAPI: topics over WebSocket, SSE, WebSub and HTTP, on any broker."""

__version__ = "0.1.0"
