from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(broker="memory://")


class Reading(BaseModel):
    sensor: str
    celsius: float = Field(ge=-90, le=60)


class Alert(BaseModel):
    room: int
    message: str


def threshold() -> float:
    """A dependency, as in FastAPI: settings, a database session, a client..."""
    return 30.0


@streaming.subscribe("/rooms/{room:int}/alerts", channel="building.alerts.{room}")
async def alerts(
    event: Reading, room: int, limit: Annotated[float, Depends(threshold)]
) -> Alert | None:
    """Alerts for one room, made from its sensor readings (too warm only)."""
    if event.celsius < limit:
        return None  # not sent to anyone
    return Alert(room=room, message=f"{event.sensor} reads {event.celsius} °C")


@streaming.publish("/rooms/{room:int}/alerts")
async def report(event: Reading, room: int) -> Reading:
    """Sensors post their readings here."""
    return event


app = FastAPI()
streaming.init_app(app)
