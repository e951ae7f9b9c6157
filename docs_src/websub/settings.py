from fastapi_streaming import StreamingAPI, WebSubSettings

streaming = StreamingAPI(websub=True)  # SQLite file websub.sqlite3 in the working directory
streaming = StreamingAPI(
    websub=WebSubSettings(database_url="postgresql+asyncpg://app@db/app"),
)
