"""Configuration: one pydantic-settings model (settings) and its generated reference (docgen)."""
