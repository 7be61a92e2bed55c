"""HTTP layer shared by the functions' ASGI apps (Starlette): responses, CORS, errors."""
