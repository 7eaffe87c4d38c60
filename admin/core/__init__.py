"""The admin API's settings and secrets: no FastAPI, no Redis."""
