from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(broker="redis://127.0.0.1:6379")
