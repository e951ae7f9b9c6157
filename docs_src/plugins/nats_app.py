from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(title="Market data", version="1.0.0", broker="nats://127.0.0.1:4222")
