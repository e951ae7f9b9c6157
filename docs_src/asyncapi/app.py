"""An app whose AsyncAPI document says who runs it, where it is, and what each topic needs."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer


class Reading(BaseModel):
    """One measurement of a sensor."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"sensor": "north", "celsius": 21.5}]}
    )

    sensor: str = Field(description="The sensor's name.", examples=["north"])
    celsius: float = Field(ge=-90, le=60, description="Temperature in °C.")


streaming = StreamingAPI(
    title="Greenhouse",
    version="1.2.0",
    description="Sensor readings of the greenhouse, live.",
    contact={"name": "Greenhouse team", "email": "greenhouse@example.com"},
    license_info={"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
    authorizer=JWTAuthorizer(jwks_url="https://auth.example.com/.well-known/jwks.json"),
    public_url="https://greenhouse.example.com",  # the document's servers; default: the request
    asyncapi_version="3.0.0",  # or "3.1.0" / "2.6.0"; ?version= picks per request
)


@streaming.subscribe("/rooms/{room:int}/readings", scopes=["readings:read"])
async def readings(event: Reading, room: int) -> Reading:
    """Every reading of one room, as it is taken."""
    return event


@streaming.publish("/rooms/{room:int}/readings", scopes=["readings:write"])
async def record(event: Reading, room: int) -> Reading:
    """Sensors send their readings here."""
    return event


app = FastAPI()
streaming.init_app(app)  # /asyncapi.json, /asyncapi.yaml and the /asyncapi page
