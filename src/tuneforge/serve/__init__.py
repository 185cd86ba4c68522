"""The serving protocols over infer/: Vertex predict, generateContent (and its stream), OpenAI chat completions.
Requests come in as wire models and leave as wire models. May import infer, data, catalog and the base; never
train, control or above."""
