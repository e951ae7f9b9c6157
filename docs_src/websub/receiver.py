import hashlib
import hmac

from fastapi import FastAPI, Request, Response

SECRET = b"change-me"  # the hub.secret you subscribed with
app = FastAPI()


@app.get("/webhook")
async def verify(request: Request) -> Response:
    """The hub asks whether we want this subscription: echoing the challenge says yes."""
    print(request.query_params["hub.mode"], request.query_params.get("hub.reason", ""))
    return Response(request.query_params.get("hub.challenge", ""), media_type="text/plain")


@app.post("/webhook")
async def receive(request: Request) -> Response:
    body = await request.body()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, request.headers.get("x-hub-signature", "")):
        print(request.headers["x-hub-event-id"], body.decode())
    return Response(status_code=204)  # acknowledge quickly, even what we ignore
