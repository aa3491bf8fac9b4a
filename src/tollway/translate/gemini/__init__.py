"""The OpenAI pivot → Gemini and back: an upstream Gemini serving any client through the pivot.

``upstream_request`` and ``upstream_response`` translate chat completions, ``embeddings`` the
embeddings endpoint, ``schema`` the JSON-schema subset Gemini accepts. No client speaks Gemini's
protocol to tollway, so there is no ``client_*`` side.
"""
