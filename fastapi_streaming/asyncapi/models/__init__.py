"""Typed models of the AsyncAPI objects fastapi-streaming writes, one module per major version.

Schemas (payloads, parameters) stay plain JSON Schema dictionaries: pydantic writes them, and a
model of JSON Schema would only drop keywords it does not know. Objects that the specification
lets carry ``x-`` extensions accept extra fields.
"""
