"""Pydantic mirrors of every external shape: Vertex resources and requests, google.rpc Status, predict /
generateContent / OpenAI chat. camelCase aliases, snake_case accepted, int64 as strings, enums by name or number.
Imports nothing of tuneforge but errors."""
