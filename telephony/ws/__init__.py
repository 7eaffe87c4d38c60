"""The websocket transport: Twilio Media Streams and the native protocol (`parley gateway`).

gateway.py     the ASGI app (Starlette on uvicorn): /twilio, /stream, /twiml, /healthz
call.py        WebsocketCall: one accepted websocket as a `telephony.leg.Leg`
serializers/   one module per media-stream protocol behind serialize/deserialize
signature.py   Twilio request signatures and the public URL a request was made to
settings.py    the gateway's pydantic-settings `Settings` (PARLEY_*)
"""
