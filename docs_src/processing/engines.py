from fastapi_streaming import StreamingAPI

# The embedded engine (the default), with checkpoints on Redis Streams.
embedded = StreamingAPI(broker="redis-stream://127.0.0.1:6379")
# Quix Streams on Kafka, from the fastapi-streaming-quix package.
on_quix = StreamingAPI(broker="kafka://127.0.0.1:9092", processing_engine="quix")
