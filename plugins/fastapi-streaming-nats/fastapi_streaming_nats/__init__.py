"""NATS broker backend for fastapi-streaming: channels are subjects, JetStream on request."""

from fastapi_streaming_nats.backend import NATSBackend
from fastapi_streaming_nats.options import NATSOptions

__version__ = "0.1.0"
__all__ = ["NATSBackend", "NATSOptions", "__version__"]
