from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(
    title="Orders", version="1.0.0", broker="amqp://guest:guest@127.0.0.1:5672/"
)
