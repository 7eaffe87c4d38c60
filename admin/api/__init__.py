"""The admin API's FastAPI routes (`/v1/...`) and their dependencies."""
