from fastapi import FastAPI

from example_app.users import UserCreate, UserRead, auth_backend, authorizer, fastapi_users
from fastapi_streaming import StreamingAPI

app = FastAPI()
# --8<-- [start:wiring]
streaming = StreamingAPI(title="Market data", authorizer=authorizer)
app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth")
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt")
# --8<-- [end:wiring]
streaming.init_app(app)
