"""Request and response models of the HTTP API (pydantic v2); the OpenAPI document uses them too."""
