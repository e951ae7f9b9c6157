"""AMQP (RabbitMQ) broker backend for fastapi-streaming: a topic exchange, channels as keys."""

from fastapi_streaming_amqp.backend import AMQPBackend
from fastapi_streaming_amqp.options import AMQPOptions

__version__ = "0.1.0"
__all__ = ["AMQPBackend", "AMQPOptions", "__version__"]
