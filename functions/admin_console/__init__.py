"""The admin function: the admin console and its JSON API (``gateway/web/admin/``)."""
