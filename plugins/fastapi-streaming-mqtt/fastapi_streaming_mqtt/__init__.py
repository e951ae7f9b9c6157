"""MQTT broker backend for fastapi-streaming: channel ``stocks.AAPL`` is topic ``stocks/AAPL``."""

from fastapi_streaming_mqtt.backend import MQTTBackend
from fastapi_streaming_mqtt.options import MQTTOptions

__version__ = "0.1.0"
__all__ = ["MQTTBackend", "MQTTOptions", "__version__"]
