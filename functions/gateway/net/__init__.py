"""Outbound HTTP to addresses chosen by users (client metadata documents, upstream OAuth discovery)."""
