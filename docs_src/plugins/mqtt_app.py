from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(title="Plant", version="1.0.0", broker="mqtt://127.0.0.1:1883")
