"""The admin side: web pages and JSON API (Starlette), shared admin actions."""
