"""Anthropic Messages ⇄ the OpenAI pivot, both ways round.

``upstream_*``: an upstream Claude serving a pivot-speaking call (pivot request → Anthropic request,
Anthropic answer → pivot). ``client_*``: an Anthropic client served by anything else (its request →
pivot request, pivot answer → Anthropic answer, whole or streamed).
"""
